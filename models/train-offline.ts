/**
 * Training a version outside a retrain trigger (`sampleloop models train`): on a labeled file or on
 * a category's samples. The same pieces the built-in trainer uses (models/trainer-job.ts): the
 * request-ID holdout, L-BFGS logistic regression in a worker, ONNX export, and holdout accuracy by
 * onnxruntime; the candidate must pass the same checks (enough training and holdout rows, two
 * classes) and, against a serving version, the same promotion gate (models/promotion-gate.ts) on the
 * same holdout rows before it is published; with `trainer.refitOnAll` the published model is then
 * refitted on every row, as the trainer does.
 */
import type { ModelVersion, TrainingSnapshot } from '../schemas/types.js';
import type { LogisticModel } from './logistic-regression.js';
import { ModelError } from './model-error.js';
import { exportOnnx, modelSha256 } from './onnx-export.js';
import { trainInWorker } from './train-async.js';
import { judgeCandidate } from './promotion-gate.js';
import { naturalCompare, onnxHoldoutResults, splitHoldout, TRAINER_ID, versionOnnxBytes, type NewModelVersion, type TrainerSettings, type TrainingRow } from './trainer-job.js';

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
  | { ok: false; reason: 'too-few-samples' | 'too-few-classes' | 'candidate-not-better'; message: string; metrics: Record<string, number> };

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

  const fit = async (fitRows: readonly TrainingRow[]): Promise<{ model: LogisticModel; iterations: number; loss: number }> => {
    let iterations = 0;
    let loss = Number.NaN;
    const model = await trainInWorker(
      {
        rows: fitRows.map((r) => ({ features: r.vector, label: r.label })),
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
    return { model, iterations, loss };
  };
  const candidate = await fit(train);
  let onnx = exportOnnx(candidate.model, { version, category: input.category });
  const candidateRight = await onnxHoldoutResults(onnx, holdout);
  const holdoutAccuracy = share(candidateRight);
  const metrics: Record<string, number> = { holdoutAccuracy, ...sizes, trainIterations: candidate.iterations, trainLoss: candidate.loss };
  if (input.serving) {
    let servingRight: boolean[];
    try {
      servingRight = await onnxHoldoutResults(versionOnnxBytes(input.serving), holdout, { featureNames: input.serving.featureNames, classes: input.serving.classes });
    } catch (err) {
      if (!(err instanceof ModelError)) throw err;
      servingRight = holdout.map(() => false); // a serving version that cannot run gets nothing right (as in the trainer)
    }
    metrics.servingHoldoutAccuracy = share(servingRight);
    const verdict = judgeCandidate(candidateRight, servingRight, settings);
    metrics.gateCandidateOnlyRight = verdict.statistic.candidateOnlyRight;
    metrics.gateServingOnlyRight = verdict.statistic.servingOnlyRight;
    if (verdict.statistic.pValue !== null) metrics.gatePValue = verdict.statistic.pValue;
    if (!verdict.promote) return { ok: false, reason: 'candidate-not-better', message: verdict.message, metrics };
  }
  // The gate judged the candidate; with refitOnAll the published version learns from the holdout rows too.
  metrics.refitOnAll = settings.refitOnAll ? 1 : 0;
  metrics.publishedTrainSize = settings.refitOnAll ? rows.length : train.length;
  if (settings.refitOnAll) {
    const refitted = await fit(rows);
    onnx = exportOnnx(refitted.model, { version, category: input.category });
    metrics.publishedTrainIterations = refitted.iterations;
    metrics.publishedTrainLoss = refitted.loss;
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

function share(right: readonly boolean[]): number {
  return right.length === 0 ? 0 : right.filter(Boolean).length / right.length;
}
