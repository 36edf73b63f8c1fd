/**
 * Classification metrics of a model on labeled rows (`sampleloop models evaluate`): accuracy,
 * per-class precision / recall / F1, the confusion matrix, log loss and, for two classes, ROC AUC.
 * Definitions as scikit-learn's (precision_recall_fscore_support, log_loss with probabilities
 * clipped to [1e-15, 1 - 1e-15], roc_auc_score with ties counted half).
 */
export interface ScoredRow {
  label: string;
  predicted: string;
  /** Probability per class. */
  scores: Record<string, number>;
}

export interface ClassMetrics {
  class: string;
  precision: number;
  recall: number;
  f1: number;
  /** Rows whose true label is this class. */
  support: number;
}

export interface Evaluation {
  rows: number;
  accuracy: number;
  classes: string[];
  perClass: ClassMetrics[];
  macroF1: number;
  /** confusion[i][j]: rows of true class i predicted as class j, in the order of `classes`. */
  confusion: number[][];
  logLoss: number;
  /** Two classes only: the second class is the positive one. */
  rocAuc: number | null;
  /** Rows whose true label is not a class of the model (counted wrong, not in the matrix). */
  unknownLabels: number;
}

const EPS = 1e-15;

export function evaluate(rows: readonly ScoredRow[], classes: readonly string[]): Evaluation {
  const index = new Map(classes.map((c, i) => [c, i]));
  const confusion = classes.map(() => classes.map(() => 0));
  let correct = 0;
  let unknownLabels = 0;
  let logLoss = 0;
  for (const r of rows) {
    if (r.label === r.predicted) correct++;
    const t = index.get(r.label);
    const p = index.get(r.predicted);
    if (t === undefined) {
      unknownLabels++;
      logLoss += -Math.log(EPS);
      continue;
    }
    if (p !== undefined) (confusion[t] as number[])[p]!++;
    const prob = Math.min(1 - EPS, Math.max(EPS, r.scores[r.label] ?? 0));
    logLoss += -Math.log(prob);
  }
  const perClass = classes.map((c, i): ClassMetrics => {
    const tp = (confusion[i] as number[])[i] as number;
    const support = (confusion[i] as number[]).reduce((a, b) => a + b, 0);
    const predicted = confusion.reduce((a, row) => a + (row[i] as number), 0);
    const precision = predicted === 0 ? 0 : tp / predicted;
    const recall = support === 0 ? 0 : tp / support;
    const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
    return { class: c, precision, recall, f1, support };
  });
  return {
    rows: rows.length,
    accuracy: rows.length === 0 ? 0 : correct / rows.length,
    classes: [...classes],
    perClass,
    macroF1: perClass.length === 0 ? 0 : perClass.reduce((a, m) => a + m.f1, 0) / perClass.length,
    confusion,
    logLoss: rows.length === 0 ? 0 : logLoss / rows.length,
    rocAuc: classes.length === 2 ? rocAuc(rows, classes[1] as string) : null,
    unknownLabels,
  };
}

/** Area under the ROC curve: the probability that a random positive scores above a random negative (ties: 1/2). */
export function rocAuc(rows: readonly ScoredRow[], positive: string): number | null {
  const scored = rows.map((r) => ({ s: r.scores[positive] ?? 0, pos: r.label === positive }));
  const positives = scored.filter((x) => x.pos).length;
  const negatives = scored.length - positives;
  if (positives === 0 || negatives === 0) return null;
  scored.sort((a, b) => a.s - b.s);
  // Mann–Whitney U with mid-ranks for ties
  let rankSum = 0;
  for (let i = 0; i < scored.length; ) {
    let j = i;
    while (j < scored.length && (scored[j] as { s: number }).s === (scored[i] as { s: number }).s) j++;
    const midRank = (i + 1 + j) / 2;
    for (let k = i; k < j; k++) if ((scored[k] as { pos: boolean }).pos) rankSum += midRank;
    i = j;
  }
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/** The evaluation as a table (plain text), one line per entry. */
export function evaluationLines(e: Evaluation): string[] {
  const f = (x: number): string => x.toFixed(4);
  const lines = [`rows ${e.rows}   accuracy ${f(e.accuracy)}   log loss ${f(e.logLoss)}${e.rocAuc !== null ? `   ROC AUC ${f(e.rocAuc)} (positive: ${e.classes[1]})` : ''}   macro F1 ${f(e.macroF1)}`];
  if (e.unknownLabels > 0) lines.push(`${e.unknownLabels} row(s) have a label that is not a class of the model (counted wrong)`);
  const width = Math.max(5, ...e.classes.map((c) => c.length));
  lines.push('', `${'class'.padEnd(width)}  precision  recall  f1      support`);
  for (const m of e.perClass) lines.push(`${m.class.padEnd(width)}  ${f(m.precision).padEnd(9)}  ${f(m.recall)}  ${f(m.f1)}  ${m.support}`);
  const cell = Math.max(6, ...e.classes.map((c) => c.length), ...e.confusion.flat().map((n) => String(n).length));
  lines.push('', `confusion matrix (rows: true class, columns: predicted)`, `${''.padEnd(width)}  ${e.classes.map((c) => c.padStart(cell)).join(' ')}`);
  e.confusion.forEach((row, i) => lines.push(`${(e.classes[i] as string).padEnd(width)}  ${row.map((n) => String(n).padStart(cell)).join(' ')}`));
  return lines;
}
