/**
 * The promotion gate: McNemar's exact test (checked against exact binomial sums in BigInt), the
 * min-improvement rule, and the loop on breast-cancer replayed with 10% label noise over 20 seeds
 * (docs/retraining.md reports the figures, and those of the gate before).
 */
import { describe, expect, it } from 'vitest';
import { judgeCandidate, mcnemarExactPValue, type GateSettings } from '../models/promotion-gate.js';
import type { TrainerSettings } from '../models/trainer-job.js';
import { runNoisyReplay } from './helpers/noisy-replay.js';

/** P(X >= b), X ~ Binomial(b + c, 1/2), exactly: sum of C(n, k) over k >= b, divided by 2^n. */
function exactTail(b: number, c: number): number {
  const n = b + c;
  let coefficient = 1n;
  let sum = 0n;
  for (let k = 0; k <= n; k++) {
    if (k > 0) coefficient = (coefficient * BigInt(n - k + 1)) / BigInt(k);
    if (k >= b) sum += coefficient;
  }
  return Number((sum * 10n ** 18n) / 2n ** BigInt(n)) / 1e18;
}

const MCNEMAR: GateSettings = { promotionTest: 'mcnemar', significance: 0.05, minImprovement: 0 };
const results = (right: number, wrong: number): boolean[] => [...Array<boolean>(right).fill(true), ...Array<boolean>(wrong).fill(false)];

describe("McNemar's exact test", () => {
  it('matches the exact binomial tail, small and large', () => {
    expect(mcnemarExactPValue(6, 0)).toBeCloseTo(1 / 64, 15);
    expect(mcnemarExactPValue(5, 1)).toBeCloseTo(7 / 64, 15);
    for (const [b, c] of [[10, 2], [3, 3], [0, 4], [40, 25], [300, 240], [1, 0]] as const) {
      expect(mcnemarExactPValue(b, c)).toBeCloseTo(exactTail(b, c), 12);
    }
    expect(mcnemarExactPValue(0, 0)).toBe(1);
  });

  it('promotes only when the candidate is right on significantly more of the disagreeing rows', () => {
    // 6 rows right only for the candidate, 0 only for the serving version: p = 1/64
    const candidate = [...results(6, 0), ...results(20, 0)];
    const serving = [...results(0, 6), ...results(20, 0)];
    const verdict = judgeCandidate(candidate, serving, MCNEMAR);
    expect(verdict).toMatchObject({ promote: true, reason: 'candidate-better', statistic: { test: 'mcnemar', candidateOnlyRight: 6, servingOnlyRight: 0, threshold: 0.05 } });
    expect(verdict.statistic.pValue).toBeCloseTo(1 / 64, 15);
    expect(verdict.message).toContain('McNemar exact p = 0.0156');

    // 5 vs 1: better on the holdout, but p = 7/64 > 0.05
    const notSignificant = judgeCandidate([...results(5, 1), ...results(20, 0)], [...results(0, 5), true, ...results(20, 0)], MCNEMAR);
    expect(notSignificant).toMatchObject({ promote: false, reason: 'candidate-not-better', statistic: { candidateOnlyRight: 5, servingOnlyRight: 1 } });
  });

  it('a tie keeps the serving version, under both tests', () => {
    const candidate = [true, false, true, true];
    const serving = [false, true, true, true];
    expect(judgeCandidate(candidate, serving, MCNEMAR).promote).toBe(false);
    expect(judgeCandidate(candidate, serving, { promotionTest: 'min-improvement', significance: 0.05, minImprovement: 0 }).promote).toBe(false);
    expect(judgeCandidate(candidate, candidate, MCNEMAR).promote).toBe(false);
  });

  it('min-improvement: needs candidate > serving and the margin', () => {
    const serving = results(80, 20);
    const plusTwo = [...results(2, 0), ...results(78, 20).slice(0, 98)];
    const settings: GateSettings = { promotionTest: 'min-improvement', significance: 0.05, minImprovement: 0.03 };
    expect(judgeCandidate(plusTwo, serving, settings)).toMatchObject({ promote: false, statistic: { test: 'min-improvement', pValue: null, threshold: 0.03 } });
    const plusFive = [...results(85, 15)];
    expect(judgeCandidate(plusFive, serving, settings).promote).toBe(true);
  });
});

const GATED: TrainerSettings = {
  holdoutFraction: 0.2,
  minTrainSamples: 50,
  minHoldoutSamples: 20,
  promotionTest: 'mcnemar',
  significance: 0.05,
  minImprovement: 0,
  refitOnAll: true,
  l2: 1e-3,
  maxIterations: 500,
  tolerance: 1e-5,
  pollIntervalMs: 50,
  progressEveryIterations: 1000,
};

describe('the gate on breast-cancer replayed with 10% label noise, 20 seeds', () => {
  it('no promotion lowers test-set accuracy by more than one test row, and the loop still improves on the seed', async () => {
    const result = await runNoisyReplay({ dataset: 'breast-cancer', seeds: 20, labelNoise: 0.1, seedRows: 8, batch: 50, settings: GATED });
    const oneRow = 1 / result.testRows;
    const worst = Math.min(...result.promotions.map((p) => p.after - p.before));
    const meanSeed = result.finals.reduce((sum, f) => sum + f.seedAccuracy, 0) / result.finals.length;
    const meanFinal = result.finals.reduce((sum, f) => sum + f.finalAccuracy, 0) / result.finals.length;
    console.log(
      `noisy replay (breast-cancer, 10% label noise, 8-row seed model, a trigger every 50 samples, 20 seeds): ${result.promotions.length} promotions, ${result.rejections} rejections, ` +
        `worst change at a promotion ${(worst * result.testRows).toFixed(0)} test rows of ${result.testRows}, ` +
        `promotions that lowered test accuracy: ${result.promotions.filter((p) => p.after < p.before).length}, ` +
        `mean test accuracy seed ${(meanSeed * 100).toFixed(1)}% -> final ${(meanFinal * 100).toFixed(1)}%`,
    );
    for (const p of result.promotions) expect(p.after - p.before, `seed ${p.seed} v${p.version} after ${p.samples} samples`).toBeGreaterThanOrEqual(-oneRow - 1e-12);
    expect(result.promotions.length).toBeGreaterThanOrEqual(3);
    expect(meanFinal).toBeGreaterThan(meanSeed);
  }, 600_000);
});
