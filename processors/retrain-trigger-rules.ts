/** The trigger's settings and its rules (docs/retraining.md): when a category's state calls for retraining. */
import type { FeatureDrift } from './feature-drift.js';
import type { CategoryState } from './retrain-trigger-state.js';

export type TriggerReason = 'first-version' | 'accuracy-drop' | 'feature-drift' | 'sample-count' | 'age';

export interface TriggerSettings {
  /** Fire when this many new samples (distinct request IDs) arrived since the serving version. */
  minNewSamples: number;
  /** Fire when the live accuracy over the window falls below this ... */
  minLiveAccuracy: number;
  /** ... and the window holds at least this many samples. */
  minWindowSamples: number;
  /** Size of the sliding window of the serving version's CONFIRMED / CORRECTED samples. */
  windowSamples: number;
  /** Fire when the serving version is this old (wall clock) and has new samples; null: never. */
  maxAgeMs: number | null;
  /** New samples the age rule needs. */
  minNewSamplesForAge: number;
  /** A fired trigger blocks the next one of its category until a new version appears or this passes. */
  debounceMs: number;
  /** Wall-clock period of the check that fires age triggers while no sample arrives. */
  checkIntervalMs: number;
  /** A category with no version in the ledger fires `first-version` once it has this many samples. */
  minFirstVersionSamples: number;
  /** feature-drift: fire when a feature's PSI against the serving version's reference exceeds this; null: off. */
  maxFeaturePsi: number | null;
  /** ... once this many new samples arrived since the version started serving (and its reference holds as many). */
  minDriftSamples: number;
  /** Quantile bins per feature. */
  driftBins: number;
  /** Size of the reference sample kept per category (between this and twice this). */
  driftReferenceSamples: number;
}

/** What the drift profile says now: samples counted since the serving version started, and each feature's PSI, highest first. */
export interface DriftReading {
  referenceSamples: number;
  liveSamples: number;
  features: FeatureDrift[];
}

/**
 * The rule a category's state meets now, in this order: first-version (no version in the ledger yet),
 * accuracy-drop, feature-drift, sample-count, age; with the figures behind it and, for feature-drift,
 * the features above the threshold.
 */
export function firingReason(
  state: CategoryState,
  s: TriggerSettings,
  now: number,
  drift?: DriftReading,
): { reason: TriggerReason; details: Record<string, number>; driftedFeatures: FeatureDrift[] } | undefined {
  const windowSamples = state.windowConfirmed + state.windowCorrected;
  const liveAccuracy = windowSamples > 0 ? state.windowConfirmed / windowSamples : undefined;
  const ageMs = state.servingSince >= 0 ? Math.max(0, now - state.servingSince) : undefined;
  const drifted = s.maxFeaturePsi !== null && drift !== undefined && drift.liveSamples >= s.minDriftSamples ? drift.features.filter((f) => f.psi > (s.maxFeaturePsi as number)) : [];
  let reason: TriggerReason | undefined;
  if (!state.servingFromLedger && state.totalSamples >= s.minFirstVersionSamples) reason = 'first-version';
  else if (liveAccuracy !== undefined && windowSamples >= s.minWindowSamples && liveAccuracy < s.minLiveAccuracy) reason = 'accuracy-drop';
  else if (drifted.length > 0) reason = 'feature-drift';
  else if (state.newSamples >= s.minNewSamples) reason = 'sample-count';
  else if (s.maxAgeMs !== null && ageMs !== undefined && ageMs >= s.maxAgeMs && state.newSamples >= s.minNewSamplesForAge) reason = 'age';
  if (reason === undefined) return undefined;
  const details: Record<string, number> = { newSamples: state.newSamples, totalSamples: state.totalSamples, windowSamples };
  if (liveAccuracy !== undefined) details.liveAccuracy = liveAccuracy;
  if (ageMs !== undefined) details.ageMs = ageMs;
  if (drift !== undefined) {
    details.driftSamples = drift.liveSamples;
    details.driftReferenceSamples = drift.referenceSamples;
    if (drift.features[0]) details.maxFeaturePsi = drift.features[0].psi;
  }
  return { reason, details, driftedFeatures: reason === 'feature-drift' ? drifted : [] };
}
