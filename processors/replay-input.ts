import { encodeEntry } from '../engine/embedded/log-codec.js';
import { ValidationError } from '../engine/errors.js';
import { validateRecord } from '../schemas/validate.js';
import type { ArchiveFile } from './replay-files.js';
import { readArchiveRecords, type RawRecord } from './replay-lines.js';
import { RecordNormalizer, SIDE_SCHEMA, type ArchiveSide, type ColumnMapping } from './replay-mapping.js';
import type { ReplayStaging } from './replay-staging.js';

/** Staging streams: predictions and feedback are sorted separately. */
export const PREDICTIONS_STREAM = 0;
export const FEEDBACK_STREAM = 1;

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

export interface StageOptions {
  gateway: readonly ArchiveFile[];
  business: readonly ArchiveFile[];
  mapping: ColumnMapping;
  delimiter: string;
  maxRecordBytes: number;
  /** Records outside these ranges are skipped (counted, not rejected). */
  ranges: { predictions: TimeRange; feedback: TimeRange };
  /** Stop at the first bad line (it is still reported). */
  strict: boolean;
  staging: ReplayStaging;
  reject(line: RejectedLine): Promise<void>;
  /** Bytes of all files read so far, records read so far. */
  progress(bytes: number, records: number): void;
}

export interface StageStats {
  records: Record<ArchiveSide, number>;
  staged: { predictions: number; feedback: number };
  rejected: number;
  rejectedByReason: Record<string, number>;
  outOfRange: number;
}

class StrictStop extends Error {
  constructor(
    readonly reasonCode: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Reads every archive file (gateway files, then business files, each list in path order) and stages
 * each valid record by event time. A record is valid when the engine's own `validateRecord` accepts
 * it, so rejects here carry the engine's reason codes, with file name and line number.
 */
export async function stageArchive(options: StageOptions): Promise<StageStats> {
  const stats: StageStats = { records: { gateway: 0, business: 0 }, staged: { predictions: 0, feedback: 0 }, rejected: 0, rejectedByReason: {}, outOfRange: 0 };
  let bytesBefore = 0;
  let pendingRejects: RejectedLine[] = [];
  const flushRejects = async (): Promise<void> => {
    const batch = pendingRejects;
    pendingRejects = [];
    for (const r of batch) await options.reject(r);
  };

  const sides: Array<[ArchiveSide, readonly ArchiveFile[]]> = [
    ['gateway', options.gateway],
    ['business', options.business],
  ];
  for (const [side, files] of sides) {
    const schema = SIDE_SCHEMA[side];
    const normalizer = new RecordNormalizer(side, options.mapping[side]);
    const stream = side === 'gateway' ? PREDICTIONS_STREAM : FEEDBACK_STREAM;
    const range = side === 'gateway' ? options.ranges.predictions : options.ranges.feedback;
    for (const file of files) {
      const reject = (line: number, reasonCode: string, reason: string, requestId: unknown): void => {
        stats.rejected++;
        stats.rejectedByReason[reasonCode] = (stats.rejectedByReason[reasonCode] ?? 0) + 1;
        pendingRejects.push({ file: file.path, line, side, reasonCode, reason, requestId: typeof requestId === 'string' && requestId !== '' ? requestId : null });
        if (options.strict) throw new StrictStop(reasonCode, `${file.path}:${line}: ${reason} (${reasonCode}); --strict stops at the first bad line`);
      };
      const onRecord = (raw: RawRecord): void => {
        stats.records[side]++;
        if (raw.error !== undefined) return reject(raw.line, raw.reasonCode, raw.error, undefined);
        const candidate = normalizer.normalize(raw.fields, raw.format);
        const result = validateRecord<{ requestId: string; timestamp: number }>(schema, candidate);
        if (!result.ok) return reject(raw.line, result.reasonCode, result.reason, candidate.requestId);
        const value = result.value;
        if (value.timestamp < range.from || value.timestamp >= range.to) {
          stats.outOfRange++;
          return;
        }
        // The validated record as JSON: the engine decodes it exactly as it decodes JSON input online.
        const json = Buffer.from(JSON.stringify(value), 'utf8');
        options.staging.add(stream, value.timestamp, encodeEntry({ timestamp: value.timestamp, key: Buffer.from(value.requestId, 'utf8'), value: json, headers: {} }));
        if (side === 'gateway') stats.staged.predictions++;
        else stats.staged.feedback++;
      };
      try {
        await readArchiveRecords(
          file,
          {
            delimiter: options.delimiter,
            maxLineBytes: options.maxRecordBytes,
            onBytes: (bytes) => options.progress(bytesBefore + bytes, stats.records.gateway + stats.records.business),
            afterChunk: flushRejects,
          },
          onRecord,
        );
      } catch (err) {
        await flushRejects();
        if (err instanceof StrictStop) throw new ValidationError(err.reasonCode, err.message);
        throw err;
      }
      await flushRejects();
      bytesBefore += file.bytes;
    }
  }
  options.staging.flush();
  return stats;
}
