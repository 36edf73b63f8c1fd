/**
 * Labeled and unlabeled tables from files (CSV or JSON lines, plain or gzip), for `produce requests`,
 * `models train --from` and `models evaluate --from`. Reading reuses the replay's archive reader
 * (replay/input/lines.ts: streaming, RFC 4180 CSV, gzip by magic bytes, BOM, CRLF).
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { UsageError } from '../engine/errors.js';
import { describeFile, type LineFormat } from '../replay/input/files.js';
import { readArchiveRecords } from '../replay/input/lines.js';
import { exportedFeature, isSampleExport } from './sample-layout.js';

/** One row: its fields by column (CSV cells are strings; JSON lines keep their types). */
export interface TableRow {
  line: number;
  fields: Record<string, unknown>;
}

export interface TableReadOptions {
  format?: LineFormat;
  delimiter?: string;
  /** Longest line read; longer ones are reported as bad rows. */
  maxLineBytes?: number;
  onBytes?: (bytesRead: number, totalBytes: number) => void;
  afterChunk?: () => Promise<void>;
}

export interface BadRow {
  line: number;
  reason: string;
}

export function checkTableFile(path: string): void {
  if (!existsSync(path)) throw new UsageError(`${path} does not exist`);
  if (statSync(path).isDirectory()) throw new UsageError(`${path} is a directory, not a CSV or JSON-lines file`);
}

/** Streams the rows of `path` to `onRow`; bad rows (invalid JSON, wrong CSV field count) go to `onBad`. */
export async function readTable(path: string, options: TableReadOptions, onRow: (row: TableRow) => void, onBad: (bad: BadRow) => void): Promise<void> {
  checkTableFile(path);
  const file = describeFile(path);
  if (options.format) file.format = options.format;
  await readArchiveRecords(
    file,
    {
      maxLineBytes: options.maxLineBytes ?? 16 * 1024 * 1024,
      ...(options.delimiter !== undefined ? { delimiter: options.delimiter } : {}),
      ...(options.onBytes ? { onBytes: (n: number) => options.onBytes?.(n, file.bytes) } : {}),
      ...(options.afterChunk ? { afterChunk: options.afterChunk } : {}),
    },
    (record) => {
      // a bad header (a file without one: its first data row, with repeated values, taken as names) would
      // put every row's cells under the wrong or merged columns: refuse the file before any row is used
      if (record.error !== undefined && record.header) {
        throw new UsageError(`${path}, line ${record.line}: ${record.error}; the first row must name the columns (a header row), each once`);
      }
      if (record.error !== undefined) onBad({ line: record.line, reason: record.error });
      else onRow({ line: record.line, fields: flatten(record.fields) });
    },
  );
}

/** JSON lines may carry the features as an object (`{"features": {"x": 1}}`): its keys become columns. */
function flatten(fields: Record<string, unknown>): Record<string, unknown> {
  const nested = fields.features;
  if (nested === null || typeof nested !== 'object' || Array.isArray(nested)) return fields;
  const { features: _features, ...rest } = fields;
  return { ...(nested as Record<string, unknown>), ...rest };
}

/** A cell as a number: a JSON number, or text that is a finite decimal number; undefined otherwise (also for ''). */
export function numericCell(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (text === '' || !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/** A cell as text: strings as they are, numbers and booleans written out, null/absent → undefined. */
export function textCell(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/** Lowercase hex SHA-256 of the file's bytes as stored (compressed bytes for a .gz file). */
export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface LabeledTable {
  featureNames: string[];
  /** In the order of featureNames. */
  rows: Array<{ id: string; line: number; vector: number[]; label: string }>;
  /** Rows left out, with the reason (a label or feature missing, not a number). */
  skipped: BadRow[];
}

/**
 * Reads a labeled table: `label` column; features = `features` or every other column that is
 * numeric in every row that has it (`id` and `exclude` columns never are features); id = `id`
 * column, else `row-<line>`. A row whose label is empty or a feature is not a number is skipped with
 * the reason. The whole table is held in memory (training needs it anyway).
 */
export async function readLabeledTable(
  path: string,
  options: TableReadOptions & { label: string; features?: readonly string[]; id?: string; exclude?: readonly string[] },
): Promise<LabeledTable> {
  const rows: TableRow[] = [];
  const skipped: BadRow[] = [];
  await readTable(path, options, (row) => rows.push(row), (bad) => skipped.push(bad));
  if (rows.length === 0) throw new UsageError(`${path} has no data rows`);
  const columns = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r.fields)) columns.add(k);
  if (!columns.has(options.label)) throw new UsageError(`${path} has no column "${options.label}" (--label); its columns are ${[...columns].join(', ')}`);
  if (options.id !== undefined && !columns.has(options.id)) throw new UsageError(`${path} has no column "${options.id}" (--id)`);
  // a file written by `export samples`: its fixed columns (revision, timestamps, the predicted label...)
  // and attributes are not features, `feature.<name>` columns are feature <name>, and rows are
  // identified by requestId (so the holdout is the one the built-in trainer would choose)
  const fromExport = isSampleExport(columns) && !(options.features && options.features.length > 0);
  const idColumn = options.id ?? (fromExport ? 'requestId' : undefined);
  let featureColumns: string[];
  if (options.features && options.features.length > 0) {
    const missing = options.features.filter((f) => !columns.has(f));
    if (missing.length > 0) throw new UsageError(`${path} has no column(s) ${missing.map((m) => `"${m}"`).join(', ')} (--features)`);
    featureColumns = [...options.features];
  } else {
    const excluded = new Set([options.label, ...(idColumn !== undefined ? [idColumn] : []), ...(options.exclude ?? [])]);
    featureColumns = [...columns].filter(
      (c) =>
        !excluded.has(c) &&
        (!fromExport || exportedFeature(c) !== undefined) &&
        rows.every((r) => r.fields[c] === undefined || r.fields[c] === '' || numericCell(r.fields[c]) !== undefined) &&
        rows.some((r) => numericCell(r.fields[c]) !== undefined),
    );
    if (featureColumns.length === 0) throw new UsageError(`${path} has no numeric column besides the label "${options.label}": pass --features`);
  }
  const featureNames = fromExport ? featureColumns.map((c) => exportedFeature(c) as string) : featureColumns;
  const out: LabeledTable = { featureNames, rows: [], skipped };
  for (const r of rows) {
    const label = textCell(r.fields[options.label]);
    if (label === undefined || label.trim() === '') {
      skipped.push({ line: r.line, reason: `no label in column "${options.label}"` });
      continue;
    }
    const vector: number[] = [];
    let bad: string | undefined;
    for (const f of featureColumns) {
      const x = numericCell(r.fields[f]);
      if (x === undefined) {
        bad = `feature "${f}" is missing or not a number`;
        break;
      }
      vector.push(x);
    }
    if (bad !== undefined) {
      skipped.push({ line: r.line, reason: bad });
      continue;
    }
    const id = idColumn !== undefined ? textCell(r.fields[idColumn]) : undefined;
    out.rows.push({ id: id ?? `row-${r.line}`, line: r.line, vector, label: label.trim() });
  }
  return out;
}
