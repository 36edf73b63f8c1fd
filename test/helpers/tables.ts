/** Labeled tables from the shipped datasets, written as CSV / JSON-lines files for CLI tests. */
import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import type { Dataset } from '../../models/datasets/index.js';

export interface Split {
  train: Dataset['rows'];
  test: Dataset['rows'];
}

/** Every 5th row (from row 0) to the test set, the rest to training: deterministic, both classes in both. */
export function splitRows(rows: Dataset['rows']): Split {
  return { train: rows.filter((_, i) => i % 5 !== 0), test: rows.filter((_, i) => i % 5 === 0) };
}

export function csvText(featureNames: readonly string[], rows: Dataset['rows'], extra: { header: string; cell: (i: number) => string } | undefined = undefined): string {
  const header = [...featureNames, 'label', ...(extra ? [extra.header] : [])].join(',');
  const lines = rows.map((r, i) => [...r.features.map(String), r.label, ...(extra ? [extra.cell(i)] : [])].join(','));
  return `${header}\n${lines.join('\n')}\n`;
}

export function writeCsv(path: string, featureNames: readonly string[], rows: Dataset['rows'], options: { gzip?: boolean } = {}): void {
  const text = csvText(featureNames, rows);
  writeFileSync(path, options.gzip ? gzipSync(text) : text);
}

export function writeJsonLines(path: string, featureNames: readonly string[], rows: Dataset['rows']): void {
  writeFileSync(path, rows.map((r) => JSON.stringify({ ...Object.fromEntries(featureNames.map((f, i) => [f, r.features[i]])), label: r.label })).join('\n') + '\n');
}
