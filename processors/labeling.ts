import type { Feedback, LabeledSample, LabelSource, Prediction, SampleOrigin } from '../schemas/types.js';

export type LabelOutcome =
  | { kind: 'label'; label: string; labelSource: Exclude<LabelSource, 'DEFAULT'> }
  | { kind: 'review'; reason: ReviewReason };

/** Why feedback needs review (ReviewRecord.reason). */
export type ReviewReason = 'incorrect-without-label' | 'unknown-label';

/**
 * Turns feedback on a prediction into a label (docs/join-semantics.md, "Labeling").
 * `classes` are the category's configured classes; without them the prediction's score keys are used.
 * With configured classes, an `actualLabel` outside them is never a label (a typo in a business
 * system must not reach the training set): it needs review, reason `unknown-label`.
 */
export function labelFeedback(
  prediction: Pick<Prediction, 'predictedLabel' | 'scores'>,
  feedback: Pick<Feedback, 'actualLabel' | 'correct'>,
  classes?: readonly string[],
): LabelOutcome {
  if (feedback.actualLabel !== null) {
    if (classes && classes.length > 0 && !classes.includes(feedback.actualLabel)) return { kind: 'review', reason: 'unknown-label' };
    return feedback.actualLabel === prediction.predictedLabel
      ? { kind: 'label', label: prediction.predictedLabel, labelSource: 'CONFIRMED' }
      : { kind: 'label', label: feedback.actualLabel, labelSource: 'CORRECTED' };
  }
  if (feedback.correct === true) return { kind: 'label', label: prediction.predictedLabel, labelSource: 'CONFIRMED' };
  const known = classes && classes.length > 0 ? classes : Object.keys(prediction.scores);
  if (known.length === 2 && known.includes(prediction.predictedLabel)) {
    const other = known[0] === prediction.predictedLabel ? known[1] : known[0];
    if (other !== undefined) return { kind: 'label', label: other, labelSource: 'CORRECTED' };
  }
  return { kind: 'review', reason: 'incorrect-without-label' };
}

export function buildSample(
  prediction: Prediction,
  outcome: { label: string; labelSource: LabelSource },
  feedbackTimestamp: number | null,
  revision: number,
  origin: SampleOrigin,
): LabeledSample {
  return {
    requestId: prediction.requestId,
    category: prediction.category,
    features: prediction.features,
    attributes: prediction.attributes,
    label: outcome.label,
    labelSource: outcome.labelSource,
    predictedLabel: prediction.predictedLabel,
    modelVersion: prediction.modelVersion,
    requestTimestamp: prediction.requestTimestamp,
    feedbackTimestamp,
    revision,
    origin,
  };
}
