import { validateRecord } from '../../schemas/validate.js';
import type { ArchiveFile } from './files.js';
import type { RawRecord } from './lines.js';
import { RecordNormalizer, SIDE_SCHEMA, type ArchiveSide, type ColumnMapping } from './mapping.js';

/** Replay streams, in the order records of equal event time are processed: predictions first. */
export const PREDICTIONS_STREAM = 0;
export const FEEDBACK_STREAM = 1;
export type ReplayStream = typeof PREDICTIONS_STREAM | typeof FEEDBACK_STREAM;

/** A line that could not become a record: where it is and why (never its content, which may hold personal data). */
export interface RejectedLine {
  file: string;
  line: number;
  side: ArchiveSide;
  reasonCode: string;
  reason: string;
  requestId: string | null;
}

/** Half-open event-time range `[from, to)` in epoch ms. */
export interface TimeRange {
  from: number;
  to: number;
}

/** One valid archive record as replay feeds it to the samples topology. */
export interface ReplayItem {
  stream: ReplayStream;
  timestamp: number;
  /** The request ID (the record's key). */
  key: string;
  /** The validated record as compact JSON: the topology decodes it as it decodes JSON input online. */
  json: string;
  /** Index of the file among all input files (gateway files first, each side in path order). */
  file: number;
  line: number;
}

export interface ReadStats {
  records: Record<ArchiveSide, number>;
  staged: { predictions: number; feedback: number };
  rejected: number;
  rejectedByReason: Record<string, number>;
  outOfRange: number;
}

export function emptyStats(): ReadStats {
  return { records: { gateway: 0, business: 0 }, staged: { predictions: 0, feedback: 0 }, rejected: 0, rejectedByReason: {}, outOfRange: 0 };
}

/** Everything the reading side needs to know; plain data, so it can be posted to a worker thread. */
export interface ReadSpec {
  files: ReadonlyArray<ArchiveFile & { side: ArchiveSide }>;
  mapping: ColumnMapping;
  delimiter: string;
  maxRecordBytes: number;
  ranges: { predictions: TimeRange; feedback: TimeRange };
  strict: boolean;
}

/** Thrown at the first bad line under --strict (after the line is counted and listed). */
export class StrictStop extends Error {
  constructor(
    readonly reasonCode: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Raw records → replay items: mapping, the engine's own `validateRecord`, the event-time range.
 * Counts everything in `stats` and lists bad lines in `rejects`.
 */
export class RecordValidator {
  private readonly normalizers: Record<ArchiveSide, RecordNormalizer>;

  constructor(
    private readonly spec: ReadSpec,
    readonly stats: ReadStats,
    private readonly rejects: RejectedLine[],
  ) {
    this.normalizers = { gateway: new RecordNormalizer('gateway', spec.mapping.gateway), business: new RecordNormalizer('business', spec.mapping.business) };
  }

  /** The item of `raw`, or undefined when it was rejected or is out of range. */
  accept(fileIndex: number, raw: RawRecord): ReplayItem | undefined {
    const file = this.spec.files[fileIndex] as ReadSpec['files'][number];
    const side = file.side;
    this.stats.records[side]++;
    if (raw.error !== undefined) return this.reject(file, raw.line, raw.reasonCode, raw.error, undefined);
    const candidate = this.normalizers[side].normalize(raw.fields, raw.format);
    const result = validateRecord<{ requestId: string; timestamp: number }>(SIDE_SCHEMA[side], candidate);
    if (!result.ok) return this.reject(file, raw.line, result.reasonCode, result.reason, candidate.requestId);
    const value = result.value;
    const range = side === 'gateway' ? this.spec.ranges.predictions : this.spec.ranges.feedback;
    if (value.timestamp < range.from || value.timestamp >= range.to) {
      this.stats.outOfRange++;
      return undefined;
    }
    if (side === 'gateway') this.stats.staged.predictions++;
    else this.stats.staged.feedback++;
    return {
      stream: side === 'gateway' ? PREDICTIONS_STREAM : FEEDBACK_STREAM,
      timestamp: value.timestamp,
      key: value.requestId,
      json: JSON.stringify(value),
      file: fileIndex,
      line: raw.line,
    };
  }

  private reject(file: ReadSpec['files'][number], line: number, reasonCode: string, reason: string, requestId: unknown): undefined {
    this.stats.rejected++;
    this.stats.rejectedByReason[reasonCode] = (this.stats.rejectedByReason[reasonCode] ?? 0) + 1;
    this.rejects.push({ file: file.path, line, side: file.side, reasonCode, reason, requestId: typeof requestId === 'string' && requestId !== '' ? requestId : null });
    if (this.spec.strict) throw new StrictStop(reasonCode, `${file.path}:${line}: ${reason} (${reasonCode}); --strict stops at the first bad line`);
    return undefined;
  }
}
