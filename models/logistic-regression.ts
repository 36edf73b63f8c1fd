import { ConfigError } from '../engine/errors.js';
import { ModelError } from './model-error.js';
import { minimizeLbfgs } from './lbfgs.js';

export interface TrainOptions {
  /** L2 penalty on the weights (not the biases): loss = mean cross-entropy + l2/2 * ||W||². */
  l2: number;
  maxIterations: number;
  /** Stop when the largest absolute gradient component falls below this. */
  tolerance: number;
  onProgress?: (p: { iteration: number; loss: number }) => void;
}

export interface LogisticModel {
  featureNames: string[];
  classes: string[];
  /** Per-feature mean of the training data; the model sees (x - mean) / scale. */
  mean: Float64Array;
  /** Per-feature population standard deviation of the training data, 1 where it was 0. */
  scale: Float64Array;
  /** classes × features, row-major, applied to the standardized features. */
  weights: Float64Array;
  bias: Float64Array;
}

export interface LabeledRow {
  features: ArrayLike<number>;
  label: string;
}

/** Close to scikit-learn's LogisticRegression(C=1) on ~1000 rows; converges in well under a second on digits. */
export const defaultTrainOptions: TrainOptions = { l2: 1e-3, maxIterations: 500, tolerance: 1e-5 };

/**
 * Multinomial logistic regression trained full-batch with L-BFGS. There is no randomness anywhere,
 * so the same rows in the same order give bit-identical models.
 */
export function trainLogistic(
  rows: ReadonlyArray<LabeledRow>,
  featureNames: string[],
  classes: string[],
  opts: TrainOptions,
): LogisticModel {
  checkOptions(opts);
  const featureCount = featureNames.length;
  const classCount = classes.length;
  if (featureCount === 0) throw new ModelError('trainLogistic: featureNames is empty');
  if (classCount < 2) throw new ModelError(`trainLogistic: need at least 2 classes, got ${classCount}`);
  if (new Set(classes).size !== classCount) throw new ModelError('trainLogistic: classes contain duplicates');
  if (rows.length === 0) throw new ModelError('trainLogistic: no training rows');

  const { x, targets } = toMatrix(rows, featureCount, classes);
  const { mean, scale } = standardizeInPlace(x, rows.length, featureCount);
  const weightCount = classCount * featureCount;
  const objective = makeObjective(x, targets, rows.length, featureCount, classCount, opts.l2);

  const params = minimizeLbfgs(objective, new Float64Array(weightCount + classCount), {
    maxIterations: opts.maxIterations,
    gradientTolerance: opts.tolerance,
    onIteration: opts.onProgress,
  });

  return {
    featureNames: [...featureNames],
    classes: [...classes],
    mean,
    scale,
    weights: params.slice(0, weightCount),
    bias: params.slice(weightCount),
  };
}

/** Class probabilities in the order of `model.classes`. */
export function predictProba(model: LogisticModel, features: ArrayLike<number>): Float64Array {
  const featureCount = model.featureNames.length;
  if (features.length !== featureCount) {
    throw new ModelError(`predictProba: expected ${featureCount} features, got ${features.length}`);
  }
  const standardized = new Float64Array(featureCount);
  for (let j = 0; j < featureCount; j++) {
    standardized[j] = ((features[j] as number) - (model.mean[j] as number)) / (model.scale[j] as number);
  }
  const out = new Float64Array(model.classes.length);
  for (let c = 0; c < out.length; c++) {
    let z = model.bias[c] as number;
    const offset = c * featureCount;
    for (let j = 0; j < featureCount; j++) z += (model.weights[offset + j] as number) * (standardized[j] as number);
    out[c] = z;
  }
  softmaxInPlace(out, 0, out.length);
  return out;
}

/** The label of the most probable class (the first one on a tie). */
export function predictLabel(model: LogisticModel, features: ArrayLike<number>): string {
  const proba = predictProba(model, features);
  return model.classes[argMax(proba)] as string;
}

/** Fraction of rows whose most probable class is their label; 0 for no rows. */
export function accuracy(model: LogisticModel, rows: ReadonlyArray<LabeledRow>): number {
  if (rows.length === 0) return 0;
  let correct = 0;
  for (const row of rows) if (predictLabel(model, row.features) === row.label) correct++;
  return correct / rows.length;
}

function checkOptions(opts: TrainOptions): void {
  if (!Number.isFinite(opts.l2) || opts.l2 < 0) throw new ConfigError(`trainLogistic: l2 must be a finite number >= 0, got ${opts.l2}`);
  if (!Number.isInteger(opts.maxIterations) || opts.maxIterations < 1) {
    throw new ConfigError(`trainLogistic: maxIterations must be an integer >= 1, got ${opts.maxIterations}`);
  }
  if (!Number.isFinite(opts.tolerance) || opts.tolerance < 0) {
    throw new ConfigError(`trainLogistic: tolerance must be a finite number >= 0, got ${opts.tolerance}`);
  }
}

function toMatrix(
  rows: ReadonlyArray<LabeledRow>,
  featureCount: number,
  classes: string[],
): { x: Float64Array; targets: Int32Array } {
  const classIndex = new Map(classes.map((label, i) => [label, i]));
  const x = new Float64Array(rows.length * featureCount);
  const targets = new Int32Array(rows.length);
  rows.forEach((row, i) => {
    if (row.features.length !== featureCount) {
      throw new ModelError(`trainLogistic: row ${i} has ${row.features.length} features, expected ${featureCount}`);
    }
    const target = classIndex.get(row.label);
    if (target === undefined) throw new ModelError(`trainLogistic: row ${i} has unknown label "${row.label}"`);
    targets[i] = target;
    for (let j = 0; j < featureCount; j++) {
      const value = row.features[j] as number;
      if (!Number.isFinite(value)) throw new ModelError(`trainLogistic: row ${i} feature ${j} is not finite (${value})`);
      x[i * featureCount + j] = value;
    }
  });
  return { x, targets };
}

function standardizeInPlace(
  x: Float64Array,
  rowCount: number,
  featureCount: number,
): { mean: Float64Array; scale: Float64Array } {
  const mean = new Float64Array(featureCount);
  const scale = new Float64Array(featureCount);
  for (let i = 0; i < rowCount; i++) {
    for (let j = 0; j < featureCount; j++) mean[j] = (mean[j] as number) + (x[i * featureCount + j] as number);
  }
  for (let j = 0; j < featureCount; j++) mean[j] = (mean[j] as number) / rowCount;
  for (let i = 0; i < rowCount; i++) {
    for (let j = 0; j < featureCount; j++) {
      const d = (x[i * featureCount + j] as number) - (mean[j] as number);
      scale[j] = (scale[j] as number) + d * d;
    }
  }
  for (let j = 0; j < featureCount; j++) {
    const std = Math.sqrt((scale[j] as number) / rowCount);
    // A constant feature carries no information; scale 1 keeps (x - mean) / scale finite.
    scale[j] = std > 0 ? std : 1;
  }
  for (let i = 0; i < rowCount; i++) {
    for (let j = 0; j < featureCount; j++) {
      const k = i * featureCount + j;
      x[k] = ((x[k] as number) - (mean[j] as number)) / (scale[j] as number);
    }
  }
  return { mean, scale };
}

/** Mean cross-entropy + l2/2 ||W||² and its gradient, parameters laid out as [W (C×F) | b (C)]. */
function makeObjective(
  x: Float64Array,
  targets: Int32Array,
  rowCount: number,
  featureCount: number,
  classCount: number,
  l2: number,
): (params: Float64Array, grad: Float64Array) => number {
  const weightCount = classCount * featureCount;
  const logits = new Float64Array(classCount);
  return (params, grad) => {
    grad.fill(0);
    let loss = 0;
    for (let i = 0; i < rowCount; i++) {
      const rowOffset = i * featureCount;
      for (let c = 0; c < classCount; c++) {
        let z = params[weightCount + c] as number;
        const wOffset = c * featureCount;
        for (let j = 0; j < featureCount; j++) z += (params[wOffset + j] as number) * (x[rowOffset + j] as number);
        logits[c] = z;
      }
      const target = targets[i] as number;
      loss -= logSoftmaxAt(logits, target);
      softmaxInPlace(logits, 0, classCount);
      for (let c = 0; c < classCount; c++) {
        const residual = (logits[c] as number) - (c === target ? 1 : 0);
        const wOffset = c * featureCount;
        for (let j = 0; j < featureCount; j++) grad[wOffset + j] = (grad[wOffset + j] as number) + residual * (x[rowOffset + j] as number);
        grad[weightCount + c] = (grad[weightCount + c] as number) + residual;
      }
    }
    loss /= rowCount;
    for (let k = 0; k < grad.length; k++) grad[k] = (grad[k] as number) / rowCount;
    let penalty = 0;
    for (let k = 0; k < weightCount; k++) {
      const w = params[k] as number;
      penalty += w * w;
      grad[k] = (grad[k] as number) + l2 * w;
    }
    return loss + 0.5 * l2 * penalty;
  };
}

function logSoftmaxAt(logits: Float64Array, index: number): number {
  let max = -Infinity;
  for (const z of logits) if (z > max) max = z;
  let sum = 0;
  for (const z of logits) sum += Math.exp(z - max);
  return (logits[index] as number) - max - Math.log(sum);
}

function softmaxInPlace(values: Float64Array, start: number, end: number): void {
  let max = -Infinity;
  for (let k = start; k < end; k++) if ((values[k] as number) > max) max = values[k] as number;
  let sum = 0;
  for (let k = start; k < end; k++) {
    const e = Math.exp((values[k] as number) - max);
    values[k] = e;
    sum += e;
  }
  for (let k = start; k < end; k++) values[k] = (values[k] as number) / sum;
}

export function argMax(values: ArrayLike<number>): number {
  let best = 0;
  for (let k = 1; k < values.length; k++) if ((values[k] as number) > (values[best] as number)) best = k;
  return best;
}
