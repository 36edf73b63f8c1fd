/** Fills `grad` with the gradient at `params` and returns the objective there. */
export type Objective = (params: Float64Array, grad: Float64Array) => number;

export interface LbfgsOptions {
  maxIterations: number;
  /** Converged when max |gradient component| <= this. */
  gradientTolerance: number;
  /** Pairs of past steps kept for the curvature estimate. */
  memory?: number;
  onIteration?: (p: { iteration: number; loss: number }) => void;
}

const ARMIJO_C1 = 1e-4;
const MAX_BACKTRACKS = 50;
const MIN_CURVATURE = 1e-12;

/**
 * Limited-memory BFGS with a backtracking (Armijo) line search. Deterministic: no randomness, and
 * every loop runs in a fixed order. Returns the best parameters found (a new array).
 */
export function minimizeLbfgs(objective: Objective, initial: Float64Array, opts: LbfgsOptions): Float64Array {
  const n = initial.length;
  const memory = opts.memory ?? 10;
  const x = Float64Array.from(initial);
  const grad = new Float64Array(n);
  let loss = objective(x, grad);

  const sHistory: Float64Array[] = [];
  const yHistory: Float64Array[] = [];
  const rhoHistory: number[] = [];
  const direction = new Float64Array(n);
  const candidate = new Float64Array(n);
  const candidateGrad = new Float64Array(n);
  const alpha = new Float64Array(memory);

  for (let iteration = 1; iteration <= opts.maxIterations; iteration++) {
    if (maxAbs(grad) <= opts.gradientTolerance) break;

    twoLoopDirection(grad, sHistory, yHistory, rhoHistory, alpha, direction);
    let slope = dot(grad, direction);
    if (!(slope < 0)) {
      // The curvature estimate went bad: forget it and take a steepest-descent step.
      sHistory.length = 0;
      yHistory.length = 0;
      rhoHistory.length = 0;
      for (let k = 0; k < n; k++) direction[k] = -(grad[k] as number);
      slope = dot(grad, direction);
    }

    // Without history the direction is the raw gradient; scale the first try to a unit-length step.
    let step = sHistory.length === 0 ? Math.min(1, 1 / Math.sqrt(-slope)) : 1;
    let candidateLoss = Infinity;
    let accepted = false;
    for (let tries = 0; tries < MAX_BACKTRACKS; tries++) {
      for (let k = 0; k < n; k++) candidate[k] = (x[k] as number) + step * (direction[k] as number);
      candidateLoss = objective(candidate, candidateGrad);
      if (candidateLoss <= loss + ARMIJO_C1 * step * slope) {
        accepted = true;
        break;
      }
      step *= 0.5;
    }
    if (!accepted) break;

    const s = new Float64Array(n);
    const y = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      s[k] = (candidate[k] as number) - (x[k] as number);
      y[k] = (candidateGrad[k] as number) - (grad[k] as number);
    }
    const sy = dot(s, y);
    if (sy > MIN_CURVATURE) {
      if (sHistory.length === memory) {
        sHistory.shift();
        yHistory.shift();
        rhoHistory.shift();
      }
      sHistory.push(s);
      yHistory.push(y);
      rhoHistory.push(1 / sy);
    }

    const previousLoss = loss;
    x.set(candidate);
    grad.set(candidateGrad);
    loss = candidateLoss;
    opts.onIteration?.({ iteration, loss });
    // No measurable progress left in double precision.
    if (previousLoss - loss <= 1e-15 * Math.max(1, Math.abs(loss))) break;
  }
  return x;
}

function twoLoopDirection(
  grad: Float64Array,
  sHistory: Float64Array[],
  yHistory: Float64Array[],
  rhoHistory: number[],
  alpha: Float64Array,
  out: Float64Array,
): void {
  const n = grad.length;
  for (let k = 0; k < n; k++) out[k] = -(grad[k] as number);
  const m = sHistory.length;
  for (let i = m - 1; i >= 0; i--) {
    const a = (rhoHistory[i] as number) * dot(sHistory[i] as Float64Array, out);
    alpha[i] = a;
    axpy(-a, yHistory[i] as Float64Array, out);
  }
  if (m > 0) {
    const sLast = sHistory[m - 1] as Float64Array;
    const yLast = yHistory[m - 1] as Float64Array;
    const gamma = dot(sLast, yLast) / dot(yLast, yLast);
    for (let k = 0; k < n; k++) out[k] = (out[k] as number) * gamma;
  }
  for (let i = 0; i < m; i++) {
    const b = (rhoHistory[i] as number) * dot(yHistory[i] as Float64Array, out);
    axpy((alpha[i] as number) - b, sHistory[i] as Float64Array, out);
  }
}

function dot(a: Float64Array, b: Float64Array): number {
  let sum = 0;
  for (let k = 0; k < a.length; k++) sum += (a[k] as number) * (b[k] as number);
  return sum;
}

function axpy(a: number, x: Float64Array, y: Float64Array): void {
  for (let k = 0; k < y.length; k++) y[k] = (y[k] as number) + a * (x[k] as number);
}

function maxAbs(values: Float64Array): number {
  let max = 0;
  for (const v of values) {
    const abs = Math.abs(v);
    if (abs > max) max = abs;
  }
  return max;
}
