/**
 * Training a version outside a retrain trigger (`sampleloop models train`): on a labeled file or on
 * a category's samples. The same pieces the built-in trainer uses (models/trainer-job.ts): the
 * request-ID holdout, L-BFGS logistic regression in a worker, ONNX export, and holdout accuracy by
 * onnxruntime; the candidate must pass the same checks (enough training and holdout rows, two
 * classes, not worse than the serving version on the same holdout) before it is published.
 */
import type { ModelVersion, TrainingSnapshot } from '../schemas/types.js';
import type { LogisticModel } from './logistic-regression.js';
import { ModelError } from './model-error.js';
import { exportOnnx, modelSha256 } from './onnx-export.js';
import { trainInWorker } from './train-async.js';
import { naturalCompare, onnxHoldoutAccuracy, splitHoldout, TRAINER_ID, versionOnnxBytes, type NewModelVersion, type TrainerSettings, type TrainingRow } from './trainer-job.js';

export interface OfflineTrainingInput {
  category: string;
  rows: TrainingRow[];
  featureNames: string[];
  /** The category's configured classes; else every label, in natural order. */
  configuredClasses?: readonly string[];
  /** What the version records as its training set. */
  snapshot: TrainingSnapshot;
  serving?: ModelVersion;
  /** Labels already used in the category. */
  usedVersions: readonly string[];
  settings: TrainerSettings;
  now?: () => number;
  onIteration?: (p: { iteration: number; loss: number }) => void;
}

export type OfflineOutcome =
  | { ok: true; version: NewModelVersion; skippedRows: number }
  | { ok: false; reason: 'too-few-samples' | 'too-few-classes' | 'candidate-worse'; message: string; metrics: Record<string, number> };

/** Labels outside the configured classes are left out (counted in skippedRows). */
export async function trainOffline(input: OfflineTrainingInput): Promise<OfflineOutcome> {
  const { settings } = input;
  const classes = input.configuredClasses && input.configuredClasses.length > 0 ? [...new Set(input.configuredClasses)] : [...new Set(input.rows.map((r) => r.label))].sort(naturalCompare);
  const known = new Set(classes);
  const rows = input.rows.filter((r) => known.has(r.label));
  const { train, holdout } = splitHoldout(rows, settings.holdoutFraction);
  const sizes = { trainSize: train.length, holdoutSize: holdout.length };
  if (train.length < settings.minTrainSamples || holdout.length < settings.minHoldoutSamples) {
    return {
      ok: false,
      reason: 'too-few-samples',
      message: `${train.length} training and ${holdout.length} holdout rows (holdout fraction ${settings.holdoutFraction}); need ${settings.minTrainSamples} and ${settings.minHoldoutSamples} (trainer.minTrainSamples, trainer.minHoldoutSamples)`,
      metrics: sizes,
    };
  }
  if (classes.length < 2 || new Set(train.map((r) => r.label)).size < 2) {
    return { ok: false, reason: 'too-few-classes', message: `the training rows hold fewer than 2 classes (${[...new Set(train.map((r) => r.label))].join(', ')})`, metrics: sizes };
  }
  const nextSequence = String((input.serving?.sequence ?? 0) + 1);
  let version = nextSequence;
  for (let n = 1; input.usedVersions.includes(version); n++) version = `${nextSequence}.${n}`;

  let iterations = 0;
  let loss = Number.NaN;
  const model: LogisticModel = await trainInWorker(
    {
      rows: train.map((r) => ({ features: r.vector, label: r.label })),
      featureNames: input.featureNames,
      classes,
      options: { l2: settings.l2, maxIterations: settings.maxIterations, tolerance: settings.tolerance },
    },
    (p) => {
      iterations = p.iteration;
      loss = p.loss;
      input.onIteration?.(p);
    },
  );
  const onnx = exportOnnx(model, { version, category: input.category });
  const holdoutAccuracy = await onnxHoldoutAccuracy(onnx, holdout);
  const metrics: Record<string, number> = { holdoutAccuracy, ...sizes, trainIterations: iterations, trainLoss: loss };
  if (input.serving) {
    let servingAccuracy: number;
    try {
      servingAccuracy = await onnxHoldoutAccuracy(versionOnnxBytes(input.serving), holdout, { featureNames: input.serving.featureNames, classes: input.serving.classes });
    } catch (err) {
      if (!(err instanceof ModelError)) throw err;
      servingAccuracy = 0; // a serving version that cannot run gets nothing right (as in the trainer)
    }
    metrics.servingHoldoutAccuracy = servingAccuracy;
    if (holdoutAccuracy < servingAccuracy + settings.minImprovement) {
      return {
        ok: false,
        reason: 'candidate-worse',
        message: `candidate ${holdoutAccuracy.toFixed(4)} < serving version ${input.serving.version} ${servingAccuracy.toFixed(4)}${settings.minImprovement !== 0 ? ` + ${settings.minImprovement}` : ''} on ${holdout.length} holdout rows`,
        metrics,
      };
    }
  }
  return {
    ok: true,
    skippedRows: input.rows.length - rows.length,
    version: {
      category: input.category,
      version,
      createdAt: (input.now ?? Date.now)(),
      onnx: Buffer.from(onnx),
      onnxUri: null,
      modelSha256: modelSha256(onnx),
      featureNames: [...input.featureNames],
      classes,
      metrics,
      trainingSnapshot: input.snapshot,
      trainer: TRAINER_ID,
    },
  };
}

/** The training snapshot of a version trained on a file: `topic` "file:sha256:<hex>", no offsets, the rows used. */
export function fileSnapshot(sha256: string, rows: number): TrainingSnapshot {
  return { topic: `file:sha256:${sha256}`, offsets: [], sampleCount: rows };
}
