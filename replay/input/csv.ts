import { UsageError } from '../../engine/errors.js';

/**
 * CSV records as RFC 4180 writes them: fields separated by the delimiter; a field in double quotes
 * may hold the delimiter, line breaks and `""` (one quote). Fed line by line so a file is never held
 * whole; a record whose quoted field spans lines is returned once its closing quote is seen.
 */
/** Throws a UsageError unless `delimiter` is one character other than a quote or a line break. */
export function checkCsvDelimiter(delimiter: string): void {
  if (delimiter.length !== 1 || delimiter === '"' || delimiter === '\n' || delimiter === '\r') {
    throw new UsageError(`--delimiter must be one character other than a quote or a line break, got ${JSON.stringify(delimiter)}`);
  }
}

export class CsvRecordSplitter {
  private cells: string[] = [];
  private field = '';
  private inQuotes = false;
  private firstLine = 0;

  constructor(private readonly delimiter = ',') {
    checkCsvDelimiter(delimiter);
  }

  /** True while a quoted field is still open (the record continues on the next line). */
  get open(): boolean {
    return this.inQuotes;
  }

  /** Line number where the open record started. */
  get openSince(): number {
    return this.firstLine;
  }

  /** Feeds one line without its line break; returns the record's cells and first line number once complete. */
  push(line: string, lineNumber: number): { cells: string[]; line: number } | undefined {
    if (!this.inQuotes) {
      this.firstLine = lineNumber;
      if (!line.includes('"')) return { cells: line.split(this.delimiter), line: lineNumber };
    } else {
      this.field += '\n';
    }
    this.scan(line);
    if (this.inQuotes) return undefined;
    this.cells.push(this.field);
    const cells = this.cells;
    this.cells = [];
    this.field = '';
    return { cells, line: this.firstLine };
  }

  private scan(line: string): void {
    const d = this.delimiter;
    for (let i = 0; i < line.length; i++) {
      const c = line[i] as string;
      if (this.inQuotes) {
        if (c !== '"') this.field += c;
        else if (line[i + 1] === '"') {
          this.field += '"';
          i++;
        } else this.inQuotes = false;
      } else if (c === d) {
        this.cells.push(this.field);
        this.field = '';
      } else if (c === '"' && this.field.length === 0) {
        this.inQuotes = true;
      } else {
        this.field += c;
      }
    }
  }
}
