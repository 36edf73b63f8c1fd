/**
 * Samples as a table (`export samples`): fixed columns, one column per feature, one per attribute;
 * written as Parquet (hyparquet-writer), CSV (RFC 4180) or JSON lines.
 */
import { writeFileSync } from 'node:fs';
import { parquetWriteFile } from 'hyparquet-writer';
import { naturalCompare } from '../models/trainer-job.js';
import type { LabeledSample } from '../schemas/types.js';

export type SampleFormat = 'parquet' | 'csv' | 'jsonl';

import { ATTRIBUTE_PREFIX, FEATURE_PREFIX, FIXED_COLUMNS } from './sample-layout.js';

export { ATTRIBUTE_PREFIX, FIXED_COLUMNS };

export interface SampleColumns {
  /** Feature keys, natural order; each is a column of that name (`feature.<name>` if it collides with a fixed column). */
  features: Array<{ key: string; column: string }>;
  /** Attribute keys, natural order; column `attributes.<name>`. */
  attributes: Array<{ key: string; column: string }>;
}

export function sampleColumns(samples: readonly LabeledSample[]): SampleColumns {
  const featureKeys = new Set<string>();
  const attributeKeys = new Set<string>();
  for (const s of samples) {
    for (const k of Object.keys(s.features)) featureKeys.add(k);
    for (const k of Object.keys(s.attributes ?? {})) attributeKeys.add(k);
  }
  const fixed = new Set<string>(FIXED_COLUMNS);
  return {
    features: [...featureKeys].sort(naturalCompare).map((key) => ({ key, column: fixed.has(key) || key.startsWith(ATTRIBUTE_PREFIX) ? `${FEATURE_PREFIX}${key}` : key })),
    attributes: [...attributeKeys].sort(naturalCompare).map((key) => ({ key, column: `${ATTRIBUTE_PREFIX}${key}` })),
  };
}

/** One row as a flat object in column order (features/attributes a sample lacks are null; times in epoch ms). */
export function sampleRow(s: LabeledSample, columns: SampleColumns): Record<string, string | number | null> {
  const row: Record<string, string | number | null> = {
    requestId: s.requestId,
    category: s.category,
    label: s.label,
    labelSource: s.labelSource,
    predictedLabel: s.predictedLabel,
    modelVersion: s.modelVersion,
    origin: s.origin,
    revision: s.revision,
    requestTimestamp: s.requestTimestamp,
    feedbackTimestamp: s.feedbackTimestamp ?? null,
  };
  for (const f of columns.features) row[f.column] = s.features[f.key] ?? null;
  for (const a of columns.attributes) row[a.column] = s.attributes?.[a.key] ?? null;
  return row;
}

export function writeSamples(path: string, format: SampleFormat, samples: readonly LabeledSample[]): { rows: number; columns: string[] } {
  const columns = sampleColumns(samples);
  const names = [...FIXED_COLUMNS, ...columns.features.map((f) => f.column), ...columns.attributes.map((a) => a.column)];
  if (format === 'parquet') writeParquet(path, samples, columns);
  else if (format === 'csv') writeFileSync(path, csvText(names, samples.map((s) => sampleRow(s, columns))));
  else writeFileSync(path, samples.map((s) => `${JSON.stringify(sampleRow(s, columns))}\n`).join(''));
  return { rows: samples.length, columns: names };
}

/** Timestamps as TIMESTAMP (ms, UTC), revision INT32, features DOUBLE, text as UTF-8 strings; absent values null. */
function writeParquet(path: string, samples: readonly LabeledSample[], columns: SampleColumns): void {
  const text = (name: string, pick: (s: LabeledSample) => string): { name: string; data: string[]; type: 'STRING'; nullable: boolean } => ({ name, data: samples.map(pick), type: 'STRING', nullable: false });
  parquetWriteFile({
    filename: path,
    columnData: [
      text('requestId', (s) => s.requestId),
      text('category', (s) => s.category),
      text('label', (s) => s.label),
      text('labelSource', (s) => s.labelSource),
      text('predictedLabel', (s) => s.predictedLabel),
      text('modelVersion', (s) => s.modelVersion),
      text('origin', (s) => s.origin),
      { name: 'revision', data: samples.map((s) => s.revision), type: 'INT32', nullable: false },
      { name: 'requestTimestamp', data: samples.map((s) => new Date(s.requestTimestamp)), type: 'TIMESTAMP', nullable: false },
      { name: 'feedbackTimestamp', data: samples.map((s) => (s.feedbackTimestamp === null ? null : new Date(s.feedbackTimestamp))), type: 'TIMESTAMP' },
      ...columns.features.map((f) => ({ name: f.column, data: samples.map((s) => s.features[f.key] ?? null), type: 'DOUBLE' as const })),
      ...columns.attributes.map((a) => ({ name: a.column, data: samples.map((s) => s.attributes?.[a.key] ?? null), type: 'STRING' as const })),
    ],
    createdBy: 'sampleloop export samples',
  });
}

function csvCell(value: string | number | null): string {
  if (value === null) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) || text !== text.trim() ? `"${text.replace(/"/g, '""')}"` : text;
}

function csvText(names: readonly string[], rows: ReadonlyArray<Record<string, string | number | null>>): string {
  const lines = [names.map(csvCell).join(',')];
  for (const r of rows) lines.push(names.map((n) => csvCell(r[n] ?? null)).join(','));
  return `${lines.join('\n')}\n`;
}
