/** categories.<name>.trigger / .trainer override the global settings; the first-version threshold follows the trainer's needs. */
import { describe, expect, it } from 'vitest';
import { firstVersionSamples, trainerSettingsFor, triggerSettingsFor } from '../config/category-settings.js';
import { parseConfig } from '../config/config.js';

describe('per-category settings', () => {
  const config = parseConfig({
    trigger: { minNewSamples: 400, maxFeaturePsi: 0.25 },
    trainer: { minTrainSamples: 80, significance: 0.05 },
    categories: {
      iris: { classes: ['setosa', 'versicolor', 'virginica'], trigger: { minNewSamples: 60, maxFeaturePsi: null }, trainer: { minHoldoutSamples: 10, significance: 0.1, refitOnAll: false } },
      cancer: {},
    },
  });

  it('a category override wins field by field; everything else is the global value', () => {
    expect(triggerSettingsFor(config, 'iris')).toMatchObject({ minNewSamples: 60, maxFeaturePsi: null, minLiveAccuracy: 0.8, debounceMs: 3600_000 });
    expect(triggerSettingsFor(config, 'cancer')).toMatchObject({ minNewSamples: 400, maxFeaturePsi: 0.25 });
    expect(triggerSettingsFor(config, 'unknown')).toEqual(triggerSettingsFor(config));
    expect(trainerSettingsFor(config, 'iris')).toMatchObject({ minTrainSamples: 80, minHoldoutSamples: 10, significance: 0.1, refitOnAll: false, promotionTest: 'mcnemar' });
    expect(trainerSettingsFor(config, 'cancer')).toMatchObject({ minHoldoutSamples: 20, significance: 0.05, refitOnAll: true });
  });

  it('minFirstVersionSamples defaults to what the category\'s trainer needs (train and holdout minimums at its holdoutFraction, +10%)', () => {
    // iris: max(80 / 0.8, 10 / 0.2) = 100 → 110; cancer: max(100, 20 / 0.2 = 100) → 110
    expect(firstVersionSamples({ minTrainSamples: 80, minHoldoutSamples: 10, holdoutFraction: 0.2 })).toBe(110);
    expect(triggerSettingsFor(config, 'iris').minFirstVersionSamples).toBe(110);
    expect(triggerSettingsFor(parseConfig({}), 'x').minFirstVersionSamples).toBe(110); // defaults: max(50 / 0.8, 20 / 0.2) = 100
    expect(triggerSettingsFor(parseConfig({ trigger: { minFirstVersionSamples: 30 } }), 'x').minFirstVersionSamples).toBe(30);
  });

  it('rejects unknown or invalid override fields at start-up', () => {
    expect(() => parseConfig({ categories: { iris: { trigger: { minNewSampels: 5 } } } })).toThrow(/categories\.iris\.trigger/);
    expect(() => parseConfig({ categories: { iris: { trainer: { significance: 2 } } } })).toThrow(/categories\.iris\.trainer\.significance/);
    expect(() => parseConfig({ categories: { iris: { trainer: { enabled: true } } } })).toThrow(/categories\.iris\.trainer/);
  });
});
