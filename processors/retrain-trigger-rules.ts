/** The trigger's settings and its rules (docs/retraining.md): when a category's state calls for retraining. */
import type { CategoryState } from './retrain-trigger-state.js';

export type TriggerReason = 'sample-count' | 'accuracy-drop' | 'age';

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
}

/** The rule a category's state meets now (the first of accuracy-drop, sample-count, age), with the figures behind it. */
export function firingReason(state: CategoryState, s: TriggerSettings, now: number): { reason: TriggerReason; details: Record<string, number> } | undefined {
  const windowSamples = state.windowConfirmed + state.windowCorrected;
  const liveAccuracy = windowSamples > 0 ? state.windowConfirmed / windowSamples : undefined;
  const ageMs = state.servingSince >= 0 ? Math.max(0, now - state.servingSince) : undefined;
  let reason: TriggerReason | undefined;
  if (liveAccuracy !== undefined && windowSamples >= s.minWindowSamples && liveAccuracy < s.minLiveAccuracy) reason = 'accuracy-drop';
  else if (state.newSamples >= s.minNewSamples) reason = 'sample-count';
  else if (s.maxAgeMs !== null && ageMs !== undefined && ageMs >= s.maxAgeMs && state.newSamples >= s.minNewSamplesForAge) reason = 'age';
  if (reason === undefined) return undefined;
  const details: Record<string, number> = { newSamples: state.newSamples, totalSamples: state.totalSamples, windowSamples };
  if (liveAccuracy !== undefined) details.liveAccuracy = liveAccuracy;
  if (ageMs !== undefined) details.ageMs = ageMs;
  return { reason, details };
}
