import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { packageRoot } from '../../config/paths.js';
import { ModelError } from '../model-error.js';

export interface Dataset {
  name: string;
  featureNames: string[];
  classes: string[];
  rows: Array<{ features: number[]; label: string }>;
}

export type DatasetName = 'digits' | 'breast-cancer';

const DIGITS_FEATURES = 64;

/** Reads one of the datasets committed under models/datasets/ (see its README.md for citations). */
export function loadDataset(name: DatasetName): Dataset {
  switch (name) {
    case 'digits':
      return loadDigits();
    case 'breast-cancer':
      return loadBreastCancer();
    default:
      throw new ModelError(`unknown dataset "${String(name)}": expected "digits" or "breast-cancer"`);
  }
}

function readCsvLines(file: string): string[] {
  const path = join(packageRoot(), 'models', 'datasets', file);
  const text = gunzipSync(readFileSync(path)).toString('utf8');
  return text.split('\n').filter((line) => line.length > 0);
}

function parseNumber(cell: string, file: string, line: number): number {
  const value = Number(cell);
  if (cell.trim() === '' || !Number.isFinite(value)) {
    throw new ModelError(`${file}:${line}: "${cell}" is not a finite number`);
  }
  return value;
}

function loadDigits(): Dataset {
  const file = 'digits.csv.gz';
  const featureNames = Array.from({ length: DIGITS_FEATURES }, (_, i) => `px${i}`);
  const classes = Array.from({ length: 10 }, (_, i) => String(i));
  const rows = readCsvLines(file).map((line, index) => {
    const cells = line.split(',');
    if (cells.length !== DIGITS_FEATURES + 1) {
      throw new ModelError(`${file}:${index + 1}: expected ${DIGITS_FEATURES + 1} columns, got ${cells.length}`);
    }
    const features = cells.slice(0, DIGITS_FEATURES).map((cell) => parseNumber(cell, file, index + 1));
    const label = String(parseNumber(cells[DIGITS_FEATURES] ?? '', file, index + 1));
    return { features, label };
  });
  return { name: 'digits', featureNames, classes, rows };
}

function loadBreastCancer(): Dataset {
  const file = 'breast-cancer.csv.gz';
  const [header, ...body] = readCsvLines(file);
  const columns = (header ?? '').split(',');
  if (columns.length < 2 || columns[columns.length - 1] !== 'label') {
    throw new ModelError(`${file}: header must end with a "label" column`);
  }
  const featureNames = columns.slice(0, -1);
  // Same order as scikit-learn's target_names (target 0 = malignant).
  const classes = ['malignant', 'benign'];
  const rows = body.map((line, index) => {
    const cells = line.split(',');
    if (cells.length !== columns.length) {
      throw new ModelError(`${file}:${index + 2}: expected ${columns.length} columns, got ${cells.length}`);
    }
    const label = cells[cells.length - 1] ?? '';
    if (!classes.includes(label)) throw new ModelError(`${file}:${index + 2}: unknown label "${label}"`);
    const features = cells.slice(0, -1).map((cell) => parseNumber(cell, file, index + 2));
    return { features, label };
  });
  return { name: 'breast-cancer', featureNames, classes, rows };
}
