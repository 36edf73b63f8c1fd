/**
 * The feature-drift rule's arithmetic (docs/retraining.md, "feature-drift"): a reference profile per
 * feature (quantile bins of the samples the serving version was trained on, with their counts), live
 * counts in the same bins, and the population stability index between them:
 *
 *   PSI = Σ over bins (live share − reference share) × ln(live share / reference share)
 *
 * Shares are smoothed with half a sample per bin ((count + 0.5) / (total + 0.5 × bins)), so an empty
 * bin gives a large but finite term. Rules of thumb: < 0.1 stable, 0.1–0.2 moderate, > 0.2 shifted.
 */

/**
 * One feature's bins: values ≤ edges[0] fall in bin 0, values in (edges[i-1], edges[i]] in bin i,
 * values above the last edge, the reference maximum, in the last bin (empty in the reference, so a
 * shift beyond everything the version was trained on counts fully).
 */
export interface FeatureBins {
  feature: string;
  edges: number[];
  /** Reference samples per bin (edges.length + 1 bins). */
  reference: number[];
  /** Live samples per bin since the serving version started. */
  live: number[];
}

export interface DriftProfile {
  /** The serving version the profile belongs to. */
  version: string;
  referenceSamples: number;
  liveSamples: number;
  features: FeatureBins[];
}

export interface FeatureDrift {
  feature: string;
  psi: number;
}

/**
 * Builds the profile from reference rows: the features more than half of them carry, in the given
 * order; for each, up to `bins` bins with edges at the reference quantiles (equal edges merged, so a
 * feature that is mostly 0 gets a bin for 0), plus a bin above the reference maximum.
 */
export function buildDriftProfile(version: string, rows: ReadonlyArray<Record<string, number>>, bins: number, featureOrder: (a: string, b: string) => number): DriftProfile {
  const counts = new Map<string, number>();
  for (const row of rows) for (const [k, v] of Object.entries(row)) if (Number.isFinite(v)) counts.set(k, (counts.get(k) ?? 0) + 1);
  const features = [...counts].filter(([, n]) => n * 2 > rows.length).map(([k]) => k).sort(featureOrder);
  return {
    version,
    referenceSamples: rows.length,
    liveSamples: 0,
    features: features.map((feature) => {
      const values = rows.map((r) => r[feature]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
      const edges: number[] = [];
      for (let i = 1; i < bins; i++) {
        const edge = values[Math.min(values.length - 1, Math.ceil((i * values.length) / bins) - 1)] as number;
        if (edges.length === 0 || edge > (edges[edges.length - 1] as number)) edges.push(edge);
      }
      const max = values[values.length - 1];
      if (max !== undefined && (edges.length === 0 || max > (edges[edges.length - 1] as number))) edges.push(max);
      const reference = new Array<number>(edges.length + 1).fill(0);
      for (const v of values) (reference[binOf(edges, v)] as number)++;
      return { feature, edges, reference, live: new Array<number>(edges.length + 1).fill(0) };
    }),
  };
}

export function binOf(edges: readonly number[], value: number): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (value <= (edges[mid] as number)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Counts one live sample (features it lacks are left out of their feature's counts). */
export function countLive(profile: DriftProfile, features: Readonly<Record<string, number>>): void {
  profile.liveSamples++;
  for (const f of profile.features) {
    const v = features[f.feature];
    if (typeof v === 'number' && Number.isFinite(v)) (f.live[binOf(f.edges, v)] as number)++;
  }
}

export function populationStabilityIndex(reference: readonly number[], live: readonly number[]): number {
  const bins = reference.length;
  const refTotal = reference.reduce((a, b) => a + b, 0);
  const liveTotal = live.reduce((a, b) => a + b, 0);
  if (refTotal === 0 || liveTotal === 0) return 0;
  let psi = 0;
  for (let i = 0; i < bins; i++) {
    const e = ((reference[i] ?? 0) + 0.5) / (refTotal + 0.5 * bins);
    const a = ((live[i] ?? 0) + 0.5) / (liveTotal + 0.5 * bins);
    psi += (a - e) * Math.log(a / e);
  }
  return psi;
}

/** PSI of every profiled feature, highest first. */
export function featureDrift(profile: DriftProfile): FeatureDrift[] {
  return profile.features.map((f) => ({ feature: f.feature, psi: populationStabilityIndex(f.reference, f.live) })).sort((a, b) => b.psi - a.psi || (a.feature < b.feature ? -1 : 1));
}
