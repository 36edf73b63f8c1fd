import { describe, expect, it } from 'vitest';
import { loadDataset } from '../../models/datasets/index.js';
import {
  accuracy,
  defaultTrainOptions,
  predictLabel,
  predictProba,
  trainLogistic,
  type TrainOptions,
} from '../../models/logistic-regression.js';
import { exportOnnx, modelSha256 } from '../../models/onnx-export.js';
import { fixedSplit } from './helpers.js';

const digits = loadDataset('digits');
const breastCancer = loadDataset('breast-cancer');

describe('trainLogistic on digits', () => {
  const { train, test } = fixedSplit(digits.rows);
  const progress: Array<{ iteration: number; loss: number }> = [];
  const started = performance.now();
  const model = trainLogistic(train, digits.featureNames, digits.classes, {
    ...defaultTrainOptions,
    onProgress: (p) => progress.push(p),
  });
  const trainingMs = performance.now() - started;

  it('reaches sklearn-level accuracy on the fixed 70/30 split (>= 0.93 on the 30%)', () => {
    expect(accuracy(model, test)).toBeGreaterThanOrEqual(0.93);
    expect(accuracy(model, train)).toBeGreaterThanOrEqual(0.98);
    expect(trainingMs).toBeLessThan(10_000);
  });

  it('reports a loss that ends far below the starting log(10) and never rises', () => {
    expect(progress.length).toBeGreaterThan(5);
    expect(progress.map((p) => p.iteration)).toEqual(progress.map((_, i) => i + 1));
    expect(progress[0]!.loss).toBeLessThan(Math.log(10));
    expect(progress.at(-1)!.loss).toBeLessThan(0.15);
    for (let i = 1; i < progress.length; i++) expect(progress[i]!.loss).toBeLessThanOrEqual(progress[i - 1]!.loss);
  });

  it('standardizes with the training mean and std, using scale 1 for constant pixels', () => {
    // px0 is 0 in every digit image.
    expect(model.mean[0]).toBe(0);
    expect(model.scale[0]).toBe(1);
    const px10 = train.map((r) => r.features[10]!);
    const mean = px10.reduce((a, b) => a + b, 0) / px10.length;
    const std = Math.sqrt(px10.reduce((a, b) => a + (b - mean) ** 2, 0) / px10.length);
    expect(model.mean[10]).toBeCloseTo(mean, 12);
    expect(model.scale[10]).toBeCloseTo(std, 12);
    expect(model.weights).toHaveLength(10 * 64);
    expect(model.bias).toHaveLength(10);
  });

  it('gives probabilities that sum to 1 and agree with predictLabel', () => {
    for (const row of test.slice(0, 50)) {
      const p = predictProba(model, row.features);
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
      const best = p.indexOf(Math.max(...p));
      expect(predictLabel(model, row.features)).toBe(digits.classes[best]);
    }
  });
});

describe('trainLogistic determinism', () => {
  it('trains bit-identical models twice: same weights, same ONNX bytes, same sha256', () => {
    const opts: TrainOptions = { l2: 1e-3, maxIterations: 200, tolerance: 1e-6 };
    const a = trainLogistic(digits.rows, digits.featureNames, digits.classes, opts);
    const b = trainLogistic(digits.rows, digits.featureNames, digits.classes, opts);
    expect(Array.from(b.weights)).toEqual(Array.from(a.weights));
    expect(Array.from(b.bias)).toEqual(Array.from(a.bias));
    const bytesA = exportOnnx(a, { version: '7', category: 'digits' });
    const bytesB = exportOnnx(b, { version: '7', category: 'digits' });
    expect(Buffer.from(bytesB).equals(Buffer.from(bytesA))).toBe(true);
    expect(modelSha256(bytesB)).toBe(modelSha256(bytesA));
    expect(modelSha256(bytesA)).toMatch(/^[0-9a-f]{64}$/);
    // Different metadata is a different model.
    expect(modelSha256(exportOnnx(a, { version: '8', category: 'digits' }))).not.toBe(modelSha256(bytesA));
  });
});

describe('trainLogistic on a binary category', () => {
  it('separates malignant from benign (>= 0.95 on the held-out 30%)', () => {
    const { train, test } = fixedSplit(breastCancer.rows);
    const model = trainLogistic(train, breastCancer.featureNames, breastCancer.classes, defaultTrainOptions);
    expect(model.classes).toEqual(['malignant', 'benign']);
    expect(accuracy(model, test)).toBeGreaterThanOrEqual(0.95);
    // Some rows are misclassified, so a two-class model does produce wrong predictions.
    const wrong = breastCancer.rows.filter((r) => predictLabel(model, r.features) !== r.label);
    expect(wrong.length).toBeGreaterThan(0);
  });

  it('stronger L2 shrinks the weights', () => {
    const opts = { ...defaultTrainOptions };
    const norm = (w: Float64Array): number => Math.sqrt(w.reduce((a, v) => a + v * v, 0));
    const loose = trainLogistic(breastCancer.rows, breastCancer.featureNames, breastCancer.classes, { ...opts, l2: 1e-4 });
    const tight = trainLogistic(breastCancer.rows, breastCancer.featureNames, breastCancer.classes, { ...opts, l2: 1e-1 });
    expect(norm(tight.weights)).toBeLessThan(norm(loose.weights) / 2);
  });
});

describe('trainLogistic input checks', () => {
  const rows = [
    { features: [0, 1], label: 'a' },
    { features: [1, 0], label: 'b' },
  ];
  it('rejects bad data with SL_MODEL and bad options with SL_CONFIG', () => {
    const names = ['x', 'y'];
    expect(() => trainLogistic([], names, ['a', 'b'], defaultTrainOptions)).toThrow(expect.objectContaining({ code: 'SL_MODEL' }));
    expect(() => trainLogistic(rows, names, ['a'], defaultTrainOptions)).toThrow(expect.objectContaining({ code: 'SL_MODEL' }));
    expect(() => trainLogistic([{ features: [0, 1], label: 'c' }], names, ['a', 'b'], defaultTrainOptions)).toThrow(/unknown label "c"/);
    expect(() => trainLogistic([{ features: [0], label: 'a' }], names, ['a', 'b'], defaultTrainOptions)).toThrow(/1 features, expected 2/);
    expect(() => trainLogistic([{ features: [0, Number.NaN], label: 'a' }], names, ['a', 'b'], defaultTrainOptions)).toThrow(/not finite/);
    expect(() => trainLogistic(rows, names, ['a', 'b'], { ...defaultTrainOptions, l2: -1 })).toThrow(expect.objectContaining({ code: 'SL_CONFIG' }));
    expect(() => trainLogistic(rows, names, ['a', 'b'], { ...defaultTrainOptions, maxIterations: 0 })).toThrow(expect.objectContaining({ code: 'SL_CONFIG' }));
  });

  it('predictProba rejects a row of the wrong width', () => {
    const model = trainLogistic(rows, ['x', 'y'], ['a', 'b'], defaultTrainOptions);
    expect(() => predictProba(model, [1])).toThrow(expect.objectContaining({ code: 'SL_MODEL' }));
    expect(accuracy(model, rows)).toBe(1);
    expect(accuracy(model, [])).toBe(0);
  });
});
