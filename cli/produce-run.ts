/** What `produce` does once its options are checked: JSON lines in batches, or a table as Requests. */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { errorMessage, UsageError } from '../engine/errors.js';
import type { LogAccess } from '../access/embedded.js';
import { parseEventTime } from '../replay/input/mapping.js';
import { readTable, numericCell, sha256OfFile, textCell } from './table-file.js';

export type ProduceFormat = 'jsonl' | 'csv' | 'table';

/** Records per call of the log access (one HTTP request / one producer flush). */
const BATCH = 10_000;
/** Files larger than this report progress on stderr unless --no-progress. */
const PROGRESS_BYTES = 8 * 1024 * 1024;

export function tableFormat(flag: string | undefined, file: string | undefined): ProduceFormat {
  if (flag !== undefined) {
    if (flag !== 'jsonl' && flag !== 'csv' && flag !== 'table') throw new UsageError(`--format must be jsonl, csv or table, got "${flag}"`);
    return flag;
  }
  return file !== undefined && /\.csv(\.gz)?$/i.test(file) ? 'csv' : 'jsonl';
}

class Progress {
  private last = 0;
  private readonly started = Date.now();
  constructor(private readonly enabled: boolean) {}
  report(rows: number, bytes: number, total: number, force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.last < 1000) return;
    this.last = now;
    const pct = total > 0 ? ` (${Math.min(100, (100 * bytes) / total).toFixed(0)} % of the file)` : '';
    process.stderr.write(`produce: ${rows.toLocaleString('en-US')} records${pct}, ${((now - this.started) / 1000).toFixed(1)} s\n`);
  }
}

function readText(file: string | undefined): Buffer {
  try {
    const bytes = readFileSync(file ?? 0);
    return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes;
  } catch (err) {
    throw new UsageError(`cannot read ${file === undefined ? 'standard input' : `--file ${file}`}: ${errorMessage(err)}`, { cause: err });
  }
}

/** Every non-empty line becomes one record, unchanged (a bad one reaches the engine's dead letters). */
export async function produceJsonLines(
  access: LogAccess,
  topic: string,
  file: string | undefined,
  options: { keyField: string; createPartitions: number; progress: boolean | undefined },
): Promise<{ appended: number; skipped?: number }> {
  const bytes = readText(file);
  const progress = new Progress(options.progress ?? bytes.length > PROGRESS_BYTES);
  let appended = 0;
  let start = 0;
  while (start < bytes.length) {
    // BATCH lines at a time, cut at a line break
    let end = start;
    for (let n = 0; n < BATCH && end < bytes.length; n++) {
      const nl = bytes.indexOf(0x0a, end);
      end = nl < 0 ? bytes.length : nl + 1;
    }
    const result = await access.produce(topic, bytes.toString('utf8', start, end), { keyField: options.keyField, createPartitions: options.createPartitions, appendedBefore: appended });
    appended += result.appended;
    start = end;
    if (start < bytes.length) progress.report(appended, start, bytes.length);
  }
  progress.report(appended, bytes.length, bytes.length, true);
  return { appended };
}

export interface TableProduceOptions {
  format: 'csv' | 'table';
  createPartitions: number;
  delimiter: string;
  timestampColumn: string;
  source: string;
  progress: boolean | undefined;
  category?: string;
  id?: string;
  idPrefix?: string;
  features?: string[];
  attributes?: string[];
  ignore?: string[];
}

/**
 * One Request per row: requestId from the `--id` column (default `requestId` when present), else
 * `<prefix>-<line>` with prefix = the first 16 hex digits of the file's SHA-256 (the same file gives
 * the same IDs); category from `--category` or the `category` column; attributes from the
 * `--attributes` columns; features from `--features` or every other column whose cell is a number.
 * A row without a category, without a usable request ID, or without any feature is skipped and
 * reported on stderr (its line number only, never its content).
 */
export async function produceTable(access: LogAccess, topic: string, file: string, options: TableProduceOptions): Promise<{ appended: number; skipped: number }> {
  const prefix = options.idPrefix ?? (await sha256OfFile(file)).slice(0, 16);
  const attributes = new Set(options.attributes ?? []);
  const features = options.features ? new Set(options.features) : undefined;
  const ignore = new Set(options.ignore ?? []);
  const nonNumeric = new Map<string, number>();
  const skipped: Array<{ line: number; reason: string }> = [];
  let idColumn = options.id;
  let checkedHeader = false;
  let pending: string[] = [];
  let appended = 0;
  let fileBytes = 0;
  let totalBytes = 0;
  let progress: Progress | undefined;
  const now = Date.now();
  const flush = async (): Promise<void> => {
    if (pending.length === 0) return;
    const text = pending.join('\n');
    pending = [];
    appended += (await access.produce(topic, text, { keyField: 'requestId', createPartitions: options.createPartitions, appendedBefore: appended })).appended;
    progress?.report(appended, fileBytes, totalBytes);
  };
  await readTable(
    file,
    {
      format: options.format === 'csv' ? 'csv' : 'jsonl',
      delimiter: options.delimiter,
      onBytes: (n, total) => {
        fileBytes = n;
        totalBytes = total;
        progress ??= new Progress(options.progress ?? total > PROGRESS_BYTES);
      },
      afterChunk: flush,
    },
    (row) => {
      const f = row.fields;
      if (!checkedHeader) {
        checkedHeader = true;
        idColumn ??= 'requestId' in f ? 'requestId' : undefined;
        const columns = Object.keys(f);
        const missing = [...attributes, ...(features ?? []), ...(options.id !== undefined ? [options.id] : [])].filter((c) => !columns.includes(c));
        if (missing.length > 0) throw new UsageError(`${file} has no column(s) ${missing.map((m) => `"${m}"`).join(', ')}; its columns are ${columns.join(', ')}`);
        if (options.category === undefined && !columns.includes('category')) throw new UsageError(`${file} has no "category" column: pass --category <name>`);
      }
      const category = options.category ?? textCell(f.category);
      const requestId = idColumn !== undefined ? textCell(f[idColumn]) : `${prefix}-${row.line}`;
      if (category === undefined || category === '') return void skipped.push({ line: row.line, reason: 'no category' });
      if (requestId === undefined || requestId === '') return void skipped.push({ line: row.line, reason: `no request ID in column "${idColumn}"` });
      const request = { requestId, category, features: {} as Record<string, number>, attributes: {} as Record<string, string>, timestamp: now, source: options.source };
      const time = f[options.timestampColumn];
      if (time !== undefined && time !== '') {
        const ms = typeof time === 'number' ? time : parseEventTime(String(time));
        if (ms === undefined || !Number.isSafeInteger(ms) || ms < 0) return void skipped.push({ line: row.line, reason: `"${options.timestampColumn}" is not epoch milliseconds or ISO-8601` });
        request.timestamp = ms;
      }
      for (const [column, value] of Object.entries(f)) {
        if (attributes.has(column)) {
          const text = textCell(value);
          if (text !== undefined) request.attributes[column] = text;
          continue;
        }
        if (column === idColumn || column === options.timestampColumn || ignore.has(column) || (options.category === undefined && column === 'category')) continue;
        if (features !== undefined && !features.has(column)) continue;
        const x = numericCell(value);
        if (x !== undefined) request.features[column] = x;
        else if (value !== '' && value !== null && value !== undefined) nonNumeric.set(column, (nonNumeric.get(column) ?? 0) + 1);
      }
      if (Object.keys(request.features).length === 0) return void skipped.push({ line: row.line, reason: 'no numeric feature' });
      pending.push(JSON.stringify(request));
    },
    (bad) => skipped.push(bad),
  );
  await flush();
  progress?.report(appended, totalBytes, totalBytes, true);
  for (const [column, n] of nonNumeric) {
    process.stderr.write(`warning: column "${column}" had ${n} value(s) that are not numbers, left out of the features; name it in --attributes to send it as an attribute, or in --ignore\n`);
  }
  for (const s of skipped.slice(0, 20)) process.stderr.write(`skipped line ${s.line}: ${s.reason}\n`);
  if (skipped.length > 20) process.stderr.write(`... and ${skipped.length - 20} more skipped line(s)\n`);
  return { appended, skipped: skipped.length };
}
