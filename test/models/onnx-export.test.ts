import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { loadDataset, type DatasetName } from '../../models/datasets/index.js';
import { defaultTrainOptions, predictProba, trainLogistic } from '../../models/logistic-regression.js';
import { EXPORT_IR_VERSION, EXPORT_OPSET, exportOnnx } from '../../models/onnx-export.js';
import { onnx } from '../../models/onnx-proto.js';
import { loadOnnxModel, sessionOptions } from '../../models/onnx-runtime.js';
import { fixedSplit } from './helpers.js';

function trained(name: DatasetName) {
  const ds = loadDataset(name);
  const model = trainLogistic(fixedSplit(ds.rows).train, ds.featureNames, ds.classes, defaultTrainOptions);
  return { ds, model, bytes: exportOnnx(model, { version: '3', category: name }) };
}

describe.each(['digits', 'breast-cancer'] as const)('exportOnnx on %s', (name) => {
  const { ds, model, bytes } = trained(name);
  const featureCount = ds.featureNames.length;
  const classCount = ds.classes.length;

  it('runs in onnxruntime-node with the same probabilities as predictProba (within 1e-6) for every row', async () => {
    const session = await ort.InferenceSession.create(bytes, sessionOptions);
    try {
      const data = new Float64Array(ds.rows.length * featureCount);
      ds.rows.forEach((r, i) => data.set(r.features, i * featureCount));
      const out = await session.run({ features: new ort.Tensor('float64', data, [ds.rows.length, featureCount]) });
      const probabilities = out.probabilities!;
      const labels = out.label!;
      expect(probabilities.type).toBe('float64');
      expect(probabilities.dims).toEqual([ds.rows.length, classCount]);
      expect(labels.type).toBe('int64');
      const p = probabilities.data as Float64Array;
      const l = labels.data as BigInt64Array;
      let maxDiff = 0;
      ds.rows.forEach((row, i) => {
        const expected = predictProba(model, row.features);
        expected.forEach((v, c) => {
          maxDiff = Math.max(maxDiff, Math.abs(v - p[i * classCount + c]!));
        });
        expect(Number(l[i])).toBe(expected.indexOf(Math.max(...expected)));
      });
      expect(maxDiff).toBeLessThan(1e-6);
    } finally {
      await session.release();
    }
  });

  it('writes opset, IR version, graph signature and metadata_props', () => {
    const decoded = onnx.ModelProto.decode(bytes);
    expect(Number(decoded.irVersion)).toBe(EXPORT_IR_VERSION);
    expect(decoded.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', EXPORT_OPSET]]);
    expect(decoded.producerName).toBe('sampleloop');
    const graph = decoded.graph!;
    expect(graph.input!.map((i) => i.name)).toEqual(['features']);
    expect(graph.output!.map((o) => o.name)).toEqual(['probabilities', 'label']);
    expect(graph.node!.map((n) => n.opType)).toEqual(['Sub', 'Div', 'Gemm', 'Softmax', 'ArgMax']);
    const inputDims = graph.input![0]!.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue));
    expect(inputDims).toEqual(['N', featureCount]);
    const meta = Object.fromEntries(decoded.metadataProps.map((p) => [p.key, p.value]));
    expect(JSON.parse(meta['sampleloop.classes']!)).toEqual(ds.classes);
    expect(JSON.parse(meta['sampleloop.features']!)).toEqual(ds.featureNames);
    expect(meta['sampleloop.category']).toBe(name);
    expect(meta['sampleloop.version']).toBe('3');
  });

  it('loads through loadOnnxModel with classes and feature names from metadata', async () => {
    const loaded = await loadOnnxModel(bytes);
    try {
      expect(loaded.inputName).toBe('features');
      expect(loaded.inputType).toBe('float64');
      expect(loaded.featureCount).toBe(featureCount);
      expect(loaded.classes).toEqual(ds.classes);
      expect(loaded.featureNames).toEqual(ds.featureNames);
      const rows = ds.rows.slice(0, 40);
      const predictions = await loaded.predictBatch(rows.map((r) => r.features));
      expect(predictions).toHaveLength(rows.length);
      predictions.forEach((prediction, i) => {
        const expected = predictProba(model, rows[i]!.features);
        ds.classes.forEach((label, c) => expect(Math.abs(prediction.scores[label]! - expected[c]!)).toBeLessThan(1e-6));
        expect(prediction.label).toBe(ds.classes[expected.indexOf(Math.max(...expected))]);
      });
    } finally {
      await loaded.close();
    }
  });
});

describe('exportOnnx checks', () => {
  it('rejects a model whose arrays do not match its feature and class counts', () => {
    const { model } = trained('breast-cancer');
    const broken = { ...model, bias: new Float64Array(3) };
    expect(() => exportOnnx(broken, { version: '1', category: 'x' })).toThrow(expect.objectContaining({ code: 'SL_MODEL' }));
  });
});
