import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../config/paths.js';
import { loadDataset } from '../../models/datasets/index.js';
import { loadOnnxModel } from '../../models/onnx-runtime.js';
import { fixedSplit } from './helpers.js';

const sklearnDir = join(packageRoot(), 'models', 'sklearn');
const sidecar = JSON.parse(readFileSync(join(sklearnDir, 'breast-cancer-sklearn.json'), 'utf8')) as {
  featureNames: string[];
  classes: string[];
  inputName: string;
};
const ds = loadDataset('breast-cancer');

describe.each([
  ['breast-cancer-sklearn.onnx', 'ZipMap probabilities', 'float32'],
  ['breast-cancer-sklearn-tensor.onnx', 'tensor probabilities', 'float32'],
  // float64 input: skl2onnx writes no ai.onnx.ml operator; the labels are the constant tensor its
  // `label` output picks from with ArrayFeatureExtractor (they used to come out as "0", "1")
  ['breast-cancer-sklearn-double.onnx', 'float64 input, ArrayFeatureExtractor labels', 'float64'],
])('loadOnnxModel on the scikit-learn export %s (%s)', (file, _what, inputType) => {
  const bytes = readFileSync(join(sklearnDir, file));

  it(`finds the ${inputType} input and the class labels from the graph`, async () => {
    const model = await loadOnnxModel(bytes);
    try {
      expect(model.inputName).toBe(sidecar.inputName);
      expect(model.inputType).toBe(inputType);
      expect(model.featureCount).toBe(30);
      expect(model.classes).toEqual(['benign', 'malignant']);
      expect(model.classes).toEqual(sidecar.classes);
      expect(model.featureNames).toEqual([]);
    } finally {
      await model.close();
    }
  });

  it('predicts the right class for >= 90% of all rows and >= 95% of its held-out rows, in one batch', async () => {
    const model = await loadOnnxModel(bytes, { featureNames: sidecar.featureNames });
    try {
      expect(model.featureNames).toEqual(ds.featureNames);
      const predictions = await model.predictBatch(ds.rows.map((r) => r.features));
      expect(predictions).toHaveLength(ds.rows.length);
      const correct = predictions.filter((p, i) => p.label === ds.rows[i]!.label).length;
      expect(correct / ds.rows.length).toBeGreaterThanOrEqual(0.9);
      const { test } = fixedSplit(predictions.map((p, i) => p.label === ds.rows[i]!.label));
      expect(test.filter(Boolean).length / test.length).toBeGreaterThanOrEqual(0.95);
      for (const p of predictions) {
        expect(Object.keys(p.scores).sort()).toEqual(['benign', 'malignant']);
        expect(p.scores.benign! + p.scores.malignant!).toBeCloseTo(1, 5);
        expect(p.scores[p.label]).toBeGreaterThanOrEqual(0.5);
      }
    } finally {
      await model.close();
    }
  });
});

describe('loadOnnxModel', () => {
  const zipMapBytes = readFileSync(join(sklearnDir, 'breast-cancer-sklearn.onnx'));
  const tensorBytes = readFileSync(join(sklearnDir, 'breast-cancer-sklearn-tensor.onnx'));

  it('gives the same scores for the ZipMap and the tensor export of one model', async () => {
    const a = await loadOnnxModel(zipMapBytes);
    const b = await loadOnnxModel(tensorBytes);
    try {
      const rows = ds.rows.slice(0, 25).map((r) => Float64Array.from(r.features));
      const pa = await a.predictBatch(rows);
      const pb = await b.predictBatch(rows);
      expect(pa.map((p) => p.label)).toEqual(pb.map((p) => p.label));
      pa.forEach((p, i) => expect(p.scores.malignant).toBeCloseTo(pb[i]!.scores.malignant!, 6));
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('lets a classes override rename the probability columns', async () => {
    const model = await loadOnnxModel(tensorBytes, { classes: ['B', 'M'] });
    try {
      const [first] = await model.predictBatch([ds.rows[0]!.features]);
      expect(first!.label).toBe('M'); // row 0 is malignant
      expect(Object.keys(first!.scores)).toEqual(['B', 'M']);
    } finally {
      await model.close();
    }
    await expect(loadOnnxModel(tensorBytes, { classes: ['a', 'b', 'c'] })).rejects.toMatchObject({ code: 'SL_MODEL' });
  });

  it('rejects rows of the wrong width, use after close, and bytes that are not ONNX', async () => {
    const model = await loadOnnxModel(tensorBytes);
    await expect(model.predictBatch([[1, 2, 3]])).rejects.toMatchObject({ code: 'SL_VALIDATION' });
    expect(await model.predictBatch([])).toEqual([]);
    await model.close();
    await expect(model.predictBatch([ds.rows[0]!.features])).rejects.toMatchObject({ code: 'SL_CLOSED' });
    await expect(loadOnnxModel(new Uint8Array([1, 2, 3, 4, 5]))).rejects.toMatchObject({ code: 'SL_MODEL' });
  });
});
