/** The record of what the trainer decided on one trigger (topic `trainer-decisions`), and its progress events. */
import type { GateStatistic } from './promotion-gate.js';

export type DecisionKind = 'promoted' | 'rejected' | 'skipped' | 'failed';

export interface TrainerDecision {
  triggerId: string;
  category: string;
  decision: DecisionKind;
  /** Machine code: candidate-better, candidate-not-better, no-serving-version, too-few-samples, too-few-classes, already-trained, superseded, error. */
  reason: string;
  message: string;
  candidateVersion: string;
  candidateSha256: string;
  candidateAccuracy: number | null;
  servingVersion: string;
  servingAccuracy: number | null;
  holdoutSize: number;
  trainSize: number;
  /** Distinct request IDs of the category in the snapshot. */
  sampleCount: number;
  /** Samples left out: label outside the classes or a feature missing. */
  skippedSamples: number;
  iterations: number;
  /** What the promotion gate measured (null when no serving version was compared). */
  gate: GateStatistic | null;
  /** The version published: the candidate refitted on every sample (trainer.refitOnAll) or the gated candidate itself. */
  publishedSha256: string;
  /** Rows the published version was trained on (train + holdout after a refit). */
  publishedTrainSize: number;
  decidedAt: number;
}

/** A decision with nothing measured yet. */
export function blankDecision(fields: Pick<TrainerDecision, 'triggerId' | 'category' | 'candidateVersion' | 'servingVersion'>, decidedAt = 0): TrainerDecision {
  return {
    ...fields,
    decision: 'skipped',
    reason: '',
    message: '',
    candidateSha256: '',
    candidateAccuracy: null,
    servingAccuracy: null,
    holdoutSize: 0,
    trainSize: 0,
    sampleCount: 0,
    skippedSamples: 0,
    iterations: 0,
    gate: null,
    publishedSha256: '',
    publishedTrainSize: 0,
    decidedAt,
  };
}

export type TrainerProgress =
  | { phase: 'reading'; triggerId: string; category: string }
  | { phase: 'training'; triggerId: string; category: string; iteration: number; loss: number; maxIterations: number }
  | { phase: 'evaluating'; triggerId: string; category: string }
  | { phase: 'decided'; triggerId: string; category: string; decision: TrainerDecision };
