/** Running an ONNX model (a candidate or the serving version) on holdout rows, as the predictor does. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ModelVersion } from '../schemas/types.js';
import { ModelError } from './model-error.js';
import { loadOnnxModel } from './onnx-runtime.js';
import type { TrainingRow } from './training-set.js';

/** Share of rows an ONNX model labels right, reading each row's features in the model's own order; a row it cannot read counts as wrong. */
export async function onnxHoldoutAccuracy(bytes: Uint8Array, rows: readonly TrainingRow[], options: { featureNames?: string[]; classes?: string[] } = {}): Promise<number> {
  if (rows.length === 0) return 0;
  const right = await onnxHoldoutResults(bytes, rows, options);
  return right.filter(Boolean).length / rows.length;
}

/** Per row (in order): whether the ONNX model labels it right; a row it cannot read counts as wrong. */
export async function onnxHoldoutResults(bytes: Uint8Array, rows: readonly TrainingRow[], options: { featureNames?: string[]; classes?: string[] } = {}): Promise<boolean[]> {
  const right = rows.map(() => false);
  if (rows.length === 0) return right;
  const model = await loadOnnxModel(bytes, {
    ...(options.featureNames && options.featureNames.length > 0 ? { featureNames: options.featureNames } : {}),
    ...(options.classes && options.classes.length > 0 ? { classes: options.classes } : {}),
  });
  try {
    if (model.featureNames.length === 0) throw new ModelError('the model does not name its features; cannot evaluate it on samples');
    const readable: number[] = [];
    const vectors: number[][] = [];
    rows.forEach((row, index) => {
      const vector = model.featureNames.map((name) => row.features[name]);
      if (vector.every((x) => typeof x === 'number' && Number.isFinite(x))) {
        readable.push(index);
        vectors.push(vector as number[]);
      }
    });
    const BATCH = 4096;
    for (let i = 0; i < vectors.length; i += BATCH) {
      const predictions = await model.predictBatch(vectors.slice(i, i + BATCH));
      predictions.forEach((p, j) => {
        const index = readable[i + j] as number;
        if (p.label === rows[index]?.label) right[index] = true;
      });
    }
    return right;
  } finally {
    await model.close();
  }
}

/** ONNX bytes of a ledger version: inline, or from its file:// URI. */
export function versionOnnxBytes(version: Pick<ModelVersion, 'onnx' | 'onnxUri' | 'category' | 'version'>): Uint8Array {
  if (version.onnx) return version.onnx;
  if (version.onnxUri?.startsWith('file:')) return readFileSync(fileURLToPath(version.onnxUri));
  throw new ModelError(`model version ${version.category}/${version.version} has neither inline ONNX bytes nor a file:// onnxUri`);
}
