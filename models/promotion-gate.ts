/**
 * The promotion gate (docs/retraining.md, "The promotion gate"): the candidate replaces the serving
 * version only on evidence that it is better on the same holdout rows. Ties keep the serving version.
 *
 * - `mcnemar` (default): McNemar's exact test on the paired results. Of the rows where the two
 *   models disagree about being right, `b` are right only for the candidate and `c` only for the
 *   serving version; under "equally good", b ~ Binomial(b + c, 1/2). The one-sided p-value
 *   P(X >= b) must fall below `significance` (and the accuracy gain reach `minImprovement`).
 * - `min-improvement`: the candidate's holdout accuracy must exceed the serving version's and by at
 *   least `minImprovement` (an explicit margin, for teams that prefer a fixed rule); the holdout must
 *   hold `minHoldoutSamples` rows, as for every trigger.
 */
export type PromotionTest = 'mcnemar' | 'min-improvement';

export interface GateSettings {
  promotionTest: PromotionTest;
  /** McNemar: promote when the one-sided exact p-value is below this. */
  significance: number;
  /** Accuracy gain the candidate needs on top of the test (both tests). */
  minImprovement: number;
}

/** What the gate measured, logged in the trainer decision. */
export interface GateStatistic {
  test: PromotionTest;
  /** Holdout rows the candidate gets right and the serving version wrong. */
  candidateOnlyRight: number;
  /** Holdout rows the serving version gets right and the candidate wrong. */
  servingOnlyRight: number;
  /** McNemar's one-sided exact p-value (1 when the candidate is not ahead); null for min-improvement. */
  pValue: number | null;
  /** The significance (mcnemar) or minimum improvement (min-improvement) the gate applied. */
  threshold: number;
}

export interface GateVerdict {
  promote: boolean;
  /** candidate-better | candidate-not-better */
  reason: 'candidate-better' | 'candidate-not-better';
  message: string;
  statistic: GateStatistic;
}

/**
 * One-sided exact McNemar p-value: P(X >= b) for X ~ Binomial(b + c, 1/2). Computed in log space, so
 * it stays exact to double precision for any holdout size.
 */
export function mcnemarExactPValue(b: number, c: number): number {
  const n = b + c;
  return n === 0 ? 1 : tail(n, b);
}

function tail(n: number, from: number): number {
  // log C(n, k) - n log 2, summed for k = from..n with log-sum-exp
  const logHalfN = -n * Math.LN2;
  const terms: number[] = [];
  let logC = 0; // log C(n, 0)
  for (let k = 0; k <= n; k++) {
    if (k > 0) logC += Math.log(n - k + 1) - Math.log(k);
    if (k >= from) terms.push(logC + logHalfN);
  }
  const max = Math.max(...terms);
  const sum = terms.reduce((acc, t) => acc + Math.exp(t - max), 0);
  return Math.min(1, Math.exp(max + Math.log(sum)));
}

/** Judges a candidate against the serving version on the same holdout rows (`true` = labeled right). */
export function judgeCandidate(candidateRight: readonly boolean[], servingRight: readonly boolean[], settings: GateSettings): GateVerdict {
  if (candidateRight.length !== servingRight.length) throw new RangeError('the gate compares both models on the same holdout rows');
  let b = 0;
  let c = 0;
  let candidateCorrect = 0;
  let servingCorrect = 0;
  candidateRight.forEach((right, i) => {
    const serving = servingRight[i] === true;
    if (right) candidateCorrect++;
    if (serving) servingCorrect++;
    if (right && !serving) b++;
    else if (!right && serving) c++;
  });
  const n = candidateRight.length;
  const gain = n === 0 ? 0 : (candidateCorrect - servingCorrect) / n;
  const accuracies = `candidate ${fmt(n === 0 ? 0 : candidateCorrect / n)} vs serving ${fmt(n === 0 ? 0 : servingCorrect / n)} on ${n} holdout samples (${b} right only for the candidate, ${c} only for the serving version)`;
  const marginOk = gain >= settings.minImprovement;
  if (settings.promotionTest === 'mcnemar') {
    const pValue = mcnemarExactPValue(b, c);
    const promote = b > c && pValue < settings.significance && marginOk;
    const margin = settings.minImprovement > 0 ? `, gain >= ${settings.minImprovement}` : '';
    return {
      promote,
      reason: promote ? 'candidate-better' : 'candidate-not-better',
      message: `${accuracies}: McNemar exact p = ${fmtP(pValue)} ${promote ? '<' : 'needs <'} ${settings.significance}${margin}`,
      statistic: { test: 'mcnemar', candidateOnlyRight: b, servingOnlyRight: c, pValue, threshold: settings.significance },
    };
  }
  const promote = candidateCorrect > servingCorrect && marginOk;
  return {
    promote,
    reason: promote ? 'candidate-better' : 'candidate-not-better',
    message: `${accuracies}: gain ${fmt(gain)} ${promote ? '>=' : 'needs >'} ${settings.minImprovement}${settings.minImprovement === 0 ? '' : ' and > 0'}`,
    statistic: { test: 'min-improvement', candidateOnlyRight: b, servingOnlyRight: c, pValue: null, threshold: settings.minImprovement },
  };
}

function fmt(x: number): string {
  return x.toFixed(4);
}

function fmtP(p: number): string {
  return p < 1e-4 ? p.toExponential(2) : p.toFixed(4);
}
