import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { errorMessage } from '../../engine/errors.js';
import { CsvRecordSplitter } from './csv.js';
import type { ArchiveFile, LineFormat } from './files.js';

/** One record of an archive file: its fields by column / key, or why it could not be read. */
export type RawRecord =
  | { line: number; format: LineFormat; fields: Record<string, unknown>; error?: undefined }
  | { line: number; format: LineFormat; fields?: undefined; error: string; reasonCode: 'undecodable' | 'oversize'; /** the CSV header itself is bad: every row of the file is read under it */ header?: true };

export interface ReadOptions {
  /** CSV field delimiter (default `,`). */
  delimiter?: string;
  /** Longer lines are `oversize` errors, skipped without being held in memory (the engine's `input.maxRecordBytes`). */
  maxLineBytes: number;
  /** Called with the number of (compressed) file bytes read so far, after each chunk. */
  onBytes?: (bytesRead: number) => void;
  /** Awaited after each chunk's records: lets the caller flush what they produced (backpressure). */
  afterChunk?: () => Promise<void>;
}

/** The compressed stream breaks at `line`: what came before it was read. */
export class CorruptFileError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const CHUNK_BYTES = 1 << 20;

/**
 * Streams one archive file (plain or gzip) and calls `onRecord` for every record, in file order,
 * synchronously per chunk: memory stays at a chunk plus one record, whatever the file size.
 * Blank lines are skipped. An exception thrown by `onRecord` stops the read and is rethrown.
 */
export async function readArchiveRecords(file: ArchiveFile, options: ReadOptions, onRecord: (record: RawRecord) => void): Promise<void> {
  const parser = new RecordParser(file.format, options.delimiter ?? ',', onRecord);
  try {
    await readLines(file, options, (text, line) => parser.line(text, line), (line, bytes) =>
      parser.error(line, `line is ${bytes} bytes; the limit is ${options.maxLineBytes} (input.maxRecordBytes)`, 'oversize'),
    );
  } catch (err) {
    if (!(err instanceof CorruptFileError)) throw err;
    parser.error(err.line, err.message);
    return;
  }
  parser.end();
}

/** Splits a (possibly gzip) file into lines without their line breaks (LF or CRLF); line numbers start at 1. */
export async function readLines(
  file: Pick<ArchiveFile, 'path' | 'gzip'>,
  options: Pick<ReadOptions, 'maxLineBytes' | 'onBytes' | 'afterChunk'>,
  onLine: (text: string, line: number) => void,
  onTooLong: (line: number, bytes: number) => void,
): Promise<number> {
  const input = createReadStream(file.path, { highWaterMark: CHUNK_BYTES });
  let stream: Readable = input;
  if (file.gzip) {
    const gunzip = createGunzip({ chunkSize: CHUNK_BYTES });
    input.on('error', (err) => gunzip.destroy(err));
    stream = input.pipe(gunzip);
  }
  let carry: Buffer | null = null;
  let skipping = 0;
  let line = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const buf: Buffer = carry === null ? chunk : Buffer.concat([carry, chunk]);
      carry = null;
      let start = 0;
      for (;;) {
        const nl = buf.indexOf(NEWLINE, start);
        if (nl < 0) break;
        line++;
        if (skipping > 0) {
          onTooLong(line, skipping + nl - start);
          skipping = 0;
        } else {
          const end = nl > start && buf[nl - 1] === CARRIAGE_RETURN ? nl - 1 : nl;
          if (end - start > options.maxLineBytes) onTooLong(line, end - start);
          else onLine(textOf(buf, start, end, line), line);
        }
        start = nl + 1;
      }
      if (start < buf.length) {
        const rest = buf.length - start;
        if (skipping > 0 || rest > options.maxLineBytes) skipping += rest;
        else carry = buf.subarray(start);
      }
      options.onBytes?.(input.bytesRead);
      if (options.afterChunk) await options.afterChunk();
    }
  } catch (err) {
    stream.destroy();
    input.destroy();
    if (err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('Z_')) {
      throw new CorruptFileError(line + 1, `the gzip data is corrupt or truncated after line ${line}: ${errorMessage(err)}; the rest of the file is not read`);
    }
    throw err;
  }
  if (skipping > 0) onTooLong(++line, skipping);
  else if (carry !== null && carry.length > 0) {
    const end = carry[carry.length - 1] === CARRIAGE_RETURN ? carry.length - 1 : carry.length;
    onLine(textOf(carry, 0, end, line + 1), ++line);
  }
  options.onBytes?.(input.bytesRead);
  return line;
}

function textOf(buf: Buffer, start: number, end: number, line: number): string {
  const text = buf.toString('utf8', start, end);
  return line === 1 && text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Lines → records: JSON lines parsed one by one; CSV rows (after the header) as `{column: cell}`. */
class RecordParser {
  private format: LineFormat | undefined;
  private csv: CsvRecordSplitter | undefined;
  private header: string[] | undefined;

  constructor(
    format: LineFormat | undefined,
    private readonly delimiter: string,
    private readonly onRecord: (record: RawRecord) => void,
  ) {
    this.format = format;
  }

  line(text: string, line: number): void {
    if (this.csv?.open !== true && isBlank(text)) return;
    this.format ??= text.trimStart().startsWith('{') ? 'jsonl' : 'csv';
    if (this.format === 'jsonl') this.json(text, line);
    else this.csvLine(text, line);
  }

  error(line: number, message: string, reasonCode: 'undecodable' | 'oversize' = 'undecodable', header = false): void {
    this.onRecord({ line, format: this.format ?? 'jsonl', error: message, reasonCode, ...(header ? { header: true as const } : {}) });
  }

  end(): void {
    if (this.csv?.open) this.error(this.csv.openSince, 'a quoted CSV field is not closed before the end of the file');
  }

  private json(text: string, line: number): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      // V8's message quotes the line around the error: keep only the position, never record content.
      const position = /position (\d+)/.exec(errorMessage(err))?.[1];
      this.error(line, position === undefined ? 'not valid JSON' : `not valid JSON (syntax error at position ${position})`);
      return;
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      this.error(line, `a line must hold one JSON object, got ${Array.isArray(parsed) ? 'an array' : parsed === null ? 'null' : typeof parsed}`);
      return;
    }
    this.onRecord({ line, format: 'jsonl', fields: parsed as Record<string, unknown> });
  }

  private csvLine(text: string, line: number): void {
    this.csv ??= new CsvRecordSplitter(this.delimiter);
    const record = this.csv.push(text, line);
    if (record === undefined) return;
    if (this.header === undefined) {
      this.header = record.cells.map((c) => c.trim());
      const seen = new Set<string>();
      for (const column of this.header) {
        if (column === '' || column === '__proto__') this.error(record.line, `the CSV header has an invalid column name ${JSON.stringify(column)}`, 'undecodable', true);
        else if (seen.has(column)) this.error(record.line, `the CSV header names column "${column}" twice`, 'undecodable', true);
        seen.add(column);
      }
      return;
    }
    if (record.cells.length !== this.header.length) {
      this.error(record.line, `CSV row has ${record.cells.length} fields, the header has ${this.header.length}`);
      return;
    }
    const fields: Record<string, unknown> = {};
    for (let i = 0; i < this.header.length; i++) fields[this.header[i] as string] = record.cells[i];
    this.onRecord({ line: record.line, format: 'csv', fields });
  }
}

function isBlank(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09) return false;
  }
  return true;
}
