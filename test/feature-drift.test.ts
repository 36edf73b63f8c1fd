/** The feature-drift arithmetic: quantile bins, live counts and the population stability index, checked by hand. */
import { describe, expect, it } from 'vitest';
import { binOf, buildDriftProfile, countLive, featureDrift, populationStabilityIndex } from '../processors/feature-drift.js';

describe('feature drift: PSI', () => {
  it('is the smoothed Σ (a − e) ln(a / e) over bins', () => {
    // reference 50/50, live 90/10, smoothing half a sample per bin
    const e = [50.5 / 101, 50.5 / 101];
    const a = [90.5 / 101, 10.5 / 101];
    const expected = (a[0]! - e[0]!) * Math.log(a[0]! / e[0]!) + (a[1]! - e[1]!) * Math.log(a[1]! / e[1]!);
    expect(populationStabilityIndex([50, 50], [90, 10])).toBeCloseTo(expected, 15);
    expect(populationStabilityIndex([50, 50], [50, 50])).toBe(0);
    expect(populationStabilityIndex([10, 20, 30], [0, 0, 0])).toBe(0); // nothing live yet
  });

  it('bins by reference quantiles, merges equal edges, and puts values above the reference maximum in a bin of their own', () => {
    const rows = Array.from({ length: 100 }, (_, i) => ({ x: i, zero: i < 60 ? 0 : i }));
    const rare: Array<Record<string, number>> = Array.from({ length: 100 }, (_, i) => (i < 40 ? { x: i } : ({} as Record<string, number>)));
    const profile = buildDriftProfile('v1', [...rows], 4, (a, b) => (a < b ? -1 : 1));
    const x = profile.features.find((f) => f.feature === 'x');
    expect(x?.edges).toEqual([24, 49, 74, 99]);
    expect(x?.reference).toEqual([25, 25, 25, 25, 0]);
    const zero = profile.features.find((f) => f.feature === 'zero');
    expect(zero?.edges).toEqual([0, 74, 99]); // 60% zeros: one bin for 0, the quartile edges 0, 0 merged
    expect(zero?.reference).toEqual([60, 15, 25, 0]);
    expect(binOf([24, 49, 74], 24)).toBe(0);
    expect(binOf([24, 49, 74], 24.5)).toBe(1);
    expect(binOf([24, 49, 74, 99], 1000)).toBe(4);
    // a feature fewer than half of the rows carry is not profiled
    expect(buildDriftProfile('v1', rare, 4, (a, b) => (a < b ? -1 : 1)).features).toEqual([]);
  });

  it('counts live samples and ranks features by PSI', () => {
    const rows = Array.from({ length: 100 }, (_, i) => ({ stable: i, moved: i }));
    const profile = buildDriftProfile('v1', rows, 4, (a, b) => (a < b ? -1 : 1));
    for (let i = 0; i < 100; i++) countLive(profile, { stable: i, moved: 200 + i });
    countLive(profile, { stable: 5 }); // lacks "moved": counted for "stable" only
    expect(profile.liveSamples).toBe(101);
    const moved = profile.features.find((f) => f.feature === 'moved');
    expect(moved?.live).toEqual([0, 0, 0, 0, 100]);
    const drift = featureDrift(profile);
    expect(drift.map((d) => d.feature)).toEqual(['moved', 'stable']);
    expect(drift[0]?.psi).toBeCloseTo(populationStabilityIndex([25, 25, 25, 25, 0], [0, 0, 0, 0, 100]), 15);
    expect(drift[1]?.psi).toBeLessThan(0.01);
  });
});
