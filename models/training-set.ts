/** From a trigger's snapshot to training rows: read the category's samples, pick columns and classes, split off the holdout. */
import { ConfigError, DecodeError } from '../engine/errors.js';
import { decodeLoggedValue } from '../processors/retrain-trigger-events.js';
import type { WriterSchemaLookup } from '../schemas/codec.js';
import type { LabeledSample, TrainingSnapshot } from '../schemas/types.js';
import { holdoutPosition } from './holdout.js';
import type { TrainerLog } from './trainer-ports.js';

// ---------------------------------------------------------------- reading the snapshot

/** The category's samples in the snapshot, one per request ID (highest revision wins), sorted by request ID. */
export async function readSnapshotSamples(
  log: Pick<TrainerLog, 'read'>,
  lookup: WriterSchemaLookup,
  snapshot: Pick<TrainingSnapshot, 'topic' | 'offsets'>,
  category: string,
  onUndecodable: (partition: number, offset: number, err: unknown) => void = () => {},
): Promise<LabeledSample[]> {
  const latest = new Map<string, LabeledSample>();
  const PAGE = 5_000;
  for (const { partition, offset: end } of snapshot.offsets) {
    let from = 0;
    while (from < end) {
      const records = await log.read(snapshot.topic, partition, from, PAGE);
      if (records.length === 0) break;
      for (const r of records) {
        if (r.offset >= end) break;
        if (r.value === null) continue;
        let sample: LabeledSample;
        try {
          sample = asSample(decodeLoggedValue(r.value, lookup));
        } catch (err) {
          onUndecodable(partition, r.offset, err);
          continue;
        }
        if (sample.category !== category) continue;
        const previous = latest.get(sample.requestId);
        if (previous === undefined || sample.revision >= previous.revision) latest.set(sample.requestId, sample);
      }
      from = (records[records.length - 1]?.offset ?? end) + 1;
    }
  }
  return [...latest.values()].sort((a, b) => compareCodeUnits(a.requestId, b.requestId));
}

function asSample(value: unknown): LabeledSample {
  const v = value as Partial<LabeledSample> | null;
  if (
    typeof v?.requestId !== 'string' ||
    typeof v.category !== 'string' ||
    typeof v.label !== 'string' ||
    typeof v.revision !== 'number' ||
    typeof v.features !== 'object' ||
    v.features === null
  ) {
    throw new DecodeError('not a LabeledSample (requestId, category, label, revision and features are required)');
  }
  return v as LabeledSample;
}

// ---------------------------------------------------------------- building the data set

export interface TrainingRow {
  requestId: string;
  /** The sample's feature map (the serving model reads it with its own feature order). */
  features: Record<string, number>;
  /** In the order of the data set's featureNames. */
  vector: number[];
  label: string;
}

export interface TrainingSet {
  featureNames: string[];
  classes: string[];
  rows: TrainingRow[];
  skipped: number;
}

/**
 * Feature names: the serving version's (`servingFeatureNames`, when it names any), so a promoted
 * version accepts exactly the requests the serving one does; else every feature key that more than
 * half of the samples carry, in natural order (px2 before px10), so a key only a few requests carry (a
 * debugging field the model ignores) does not make every other sample unusable. Classes: the
 * configured ones, else every label in natural order. Depends only on its arguments, so the same
 * snapshot always gives the same columns. Samples lacking a feature or with a label outside
 * configured classes are skipped.
 */
export function buildTrainingSet(samples: readonly LabeledSample[], configuredClasses?: readonly string[], servingFeatureNames?: readonly string[]): TrainingSet {
  const featureNames = servingFeatureNames && servingFeatureNames.length > 0 ? [...servingFeatureNames] : majorityFeatureNames(samples);
  const classes = configuredClasses && configuredClasses.length > 0 ? [...new Set(configuredClasses)] : [...new Set(samples.map((s) => s.label))].sort(naturalCompare);
  const known = new Set(classes);
  const rows: TrainingRow[] = [];
  let skipped = 0;
  for (const s of samples) {
    const vector = featureNames.map((name) => s.features[name]);
    if (!known.has(s.label) || vector.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
      skipped++;
      continue;
    }
    rows.push({ requestId: s.requestId, features: s.features, vector: vector as number[], label: s.label });
  }
  return { featureNames, classes, rows, skipped };
}

function majorityFeatureNames(samples: readonly LabeledSample[]): string[] {
  const featureCounts = new Map<string, number>();
  for (const s of samples) for (const k of Object.keys(s.features)) featureCounts.set(k, (featureCounts.get(k) ?? 0) + 1);
  return [...featureCounts].filter(([, count]) => count * 2 > samples.length).map(([k]) => k).sort(naturalCompare);
}

/**
 * Stratified holdout, deterministic from request IDs: within each class the rows are ordered by
 * `holdoutPosition(requestId)` (the first 4 bytes of its sha256, so the same on every machine) and the
 * first round(n × fraction) of them are held out; a class with 2 or more rows holds out at least 1 and
 * keeps at least 1 for training. Each class is held out in its share, whatever the hash happens to do
 * on a small set. Rows keep their input order in both parts.
 */
export function splitHoldout(rows: readonly TrainingRow[], fraction: number): { train: TrainingRow[]; holdout: TrainingRow[] } {
  if (!Number.isFinite(fraction) || fraction < 0 || fraction > 1) throw new ConfigError(`holdout fraction must be within [0, 1], got ${fraction}`);
  const byClass = new Map<string, Array<{ row: TrainingRow; position: number }>>();
  for (const row of rows) {
    const group = byClass.get(row.label) ?? [];
    group.push({ row, position: holdoutPosition(row.requestId) });
    byClass.set(row.label, group);
  }
  const heldOut = new Set<TrainingRow>();
  for (const group of byClass.values()) {
    const n = group.length;
    let count = Math.round(n * fraction);
    if (fraction > 0 && n >= 2) count = Math.min(n - 1, Math.max(1, count));
    group.sort((x, y) => x.position - y.position || compareCodeUnits(x.row.requestId, y.row.requestId));
    for (const { row } of group.slice(0, count)) heldOut.add(row);
  }
  const train: TrainingRow[] = [];
  const holdout: TrainingRow[] = [];
  for (const row of rows) (heldOut.has(row) ? holdout : train).push(row);
  return { train, holdout };
}

// ---------------------------------------------------------------- ordering helpers

function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Digit runs compare as numbers, everything else by code unit: the same order on every machine. */
export function naturalCompare(a: string, b: string): number {
  const re = /\d+|\D+/g;
  const ca = a.match(re) ?? [];
  const cb = b.match(re) ?? [];
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    const x = ca[i] as string;
    const y = cb[i] as string;
    if (x === y) continue;
    const digits = /^\d/.test(x) && /^\d/.test(y);
    if (digits) {
      const xs = x.replace(/^0+(?=\d)/, '');
      const ys = y.replace(/^0+(?=\d)/, '');
      if (xs.length !== ys.length) return xs.length - ys.length;
      if (xs !== ys) return compareCodeUnits(xs, ys);
      return compareCodeUnits(x, y);
    }
    return compareCodeUnits(x, y);
  }
  return ca.length - cb.length || compareCodeUnits(a, b);
}
