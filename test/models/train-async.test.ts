import { beforeAll, describe, expect, it } from 'vitest';
import { loadDataset } from '../../models/datasets/index.js';
import { trainLogistic } from '../../models/logistic-regression.js';
import { trainInWorker, type TrainRequest } from '../../models/train-async.js';
import { ensureBuilt } from '../helpers/dist.js';

describe('trainInWorker', () => {
  beforeAll(async () => {
    await ensureBuilt(); // the worker runs the compiled module
  });

  it('returns the model trainLogistic returns, bit for bit, with progress, while the event loop keeps turning', async () => {
    const digits = loadDataset('digits');
    const request: TrainRequest = {
      rows: digits.rows.map((r) => ({ features: Array.from(r.features), label: r.label })),
      featureNames: digits.featureNames,
      classes: [...new Set(digits.rows.map((r) => r.label))].sort(),
      options: { l2: 1e-3, maxIterations: 150, tolerance: 1e-9 },
    };
    const inline = trainLogistic(request.rows, request.featureNames, request.classes, request.options);

    const iterations: number[] = [];
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const model = await trainInWorker(request, ({ iteration }) => iterations.push(iteration)).finally(() => clearInterval(timer));

    expect(Buffer.from(model.weights.buffer).equals(Buffer.from(inline.weights.buffer))).toBe(true);
    expect(Buffer.from(model.bias.buffer).equals(Buffer.from(inline.bias.buffer))).toBe(true);
    expect(Array.from(model.mean)).toEqual(Array.from(inline.mean));
    expect(Array.from(model.scale)).toEqual(Array.from(inline.scale));
    expect(model.classes).toEqual(inline.classes);
    expect(iterations.length).toBeGreaterThan(10);
    expect(iterations).toEqual(iterations.map((_, i) => i + 1));
    // Training inline would block the timer for the whole run; in the worker it keeps firing.
    expect(ticks).toBeGreaterThanOrEqual(3);
  });

  it('rejects with the trainer error of the worker', async () => {
    await expect(trainInWorker({ rows: [{ features: [1], label: 'a' }], featureNames: ['x'], classes: ['a'], options: { l2: 1e-3, maxIterations: 10, tolerance: 1e-6 } })).rejects.toThrow(/at least 2 classes/);
  });
});
