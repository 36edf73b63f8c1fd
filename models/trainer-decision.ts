/** The record of what the trainer decided on one trigger (topic `trainer-decisions`), and its progress events. */
export type DecisionKind = 'promoted' | 'rejected' | 'skipped' | 'failed';

export interface TrainerDecision {
  triggerId: string;
  category: string;
  decision: DecisionKind;
  /** Machine code: candidate-not-worse, candidate-worse, no-serving-version, too-few-samples, too-few-classes, already-trained, superseded, error. */
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
  decidedAt: number;
}

export type TrainerProgress =
  | { phase: 'reading'; triggerId: string; category: string }
  | { phase: 'training'; triggerId: string; category: string; iteration: number; loss: number; maxIterations: number }
  | { phase: 'evaluating'; triggerId: string; category: string }
  | { phase: 'decided'; triggerId: string; category: string; decision: TrainerDecision };
