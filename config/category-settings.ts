/**
 * A category's effective trigger and trainer settings: the global `trigger.*` / `trainer.*` with the
 * category's `categories.<name>.trigger` / `.trainer` overrides on top (docs/configuration.md).
 */
import type { SampleloopConfig } from './config.js';

type TrainerConfig = Omit<SampleloopConfig['trainer'], 'enabled'>;
type TriggerConfig = Omit<SampleloopConfig['trigger'], 'enabled' | 'repartitionTopic' | 'minFirstVersionSamples'> & { minFirstVersionSamples: number };

export function trainerSettingsFor(config: SampleloopConfig, category?: string): TrainerConfig {
  const { enabled: _enabled, ...global } = config.trainer;
  return { ...global, ...definedFields(category === undefined ? {} : (config.categories[category]?.trainer ?? {})) };
}

export function triggerSettingsFor(config: SampleloopConfig, category?: string): TriggerConfig {
  const { enabled: _enabled, repartitionTopic: _repartition, ...global } = config.trigger;
  const merged = { ...global, ...definedFields(category === undefined ? {} : (config.categories[category]?.trigger ?? {})) };
  return { ...merged, minFirstVersionSamples: merged.minFirstVersionSamples ?? firstVersionSamples(trainerSettingsFor(config, category)) };
}

/**
 * Samples a first version needs when `minFirstVersionSamples` is not set: enough for the trainer's
 * minTrainSamples and minHoldoutSamples at its holdoutFraction, plus 10% for the per-class rounding of
 * the stratified holdout.
 */
export function firstVersionSamples(trainer: Pick<TrainerConfig, 'minTrainSamples' | 'minHoldoutSamples' | 'holdoutFraction'>): number {
  const needed = Math.max(trainer.minTrainSamples / (1 - trainer.holdoutFraction), trainer.minHoldoutSamples / trainer.holdoutFraction);
  return Math.ceil(needed * 1.1 - 1e-9); // 1e-9: 80 / 0.8 is 100.00000000000001 in floating point
}

function definedFields<T extends object>(overrides: T): Partial<T> {
  return Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) as Partial<T>;
}
