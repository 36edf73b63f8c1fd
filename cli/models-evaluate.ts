/** What `models evaluate` does: the ledger's ONNX bytes, run by onnxruntime as the predictor does, on a labeled file. */
import { ModelError } from '../models/model-error.js';
import { evaluate, evaluationLines, type ScoredRow } from '../models/evaluation.js';
import { modelBytes, readLedger, trustPolicyFor } from '../models/ledger.js';
import { loadOnnxModel } from '../models/onnx-runtime.js';
import { configFrom, withLogAccess, type CommonOptions } from './context.js';
import { pickVersion } from './models-version.js';
import { readLabeledTable } from './table-file.js';

export interface EvaluateOptions extends CommonOptions {
  category: string;
  version?: string;
  from: string;
  label: string;
  format?: 'csv' | 'jsonl';
  delimiter: string;
  json?: boolean;
}

export async function evaluateCommand(opts: EvaluateOptions, out: (line: string) => void): Promise<void> {
  const config = configFrom(opts);
  const view = await withLogAccess(config, (access) => readLedger(access, config.topics.models, trustPolicyFor(config, { generate: false })), { readOnly: true });
  const version = pickVersion(view, opts.category, opts.version);
  const table = await readLabeledTable(opts.from, { label: opts.label, features: version.featureNames, delimiter: opts.delimiter, ...(opts.format ? { format: opts.format } : {}) });
  const model = await loadOnnxModel(modelBytes(version), { featureNames: version.featureNames, classes: version.classes });
  const scored: ScoredRow[] = [];
  try {
    const BATCH = 4096;
    for (let i = 0; i < table.rows.length; i += BATCH) {
      const batch = table.rows.slice(i, i + BATCH);
      const predictions = await model.predictBatch(batch.map((r) => r.vector));
      predictions.forEach((p, j) => scored.push({ label: (batch[j] as { label: string }).label, predicted: p.label, scores: p.scores }));
    }
  } finally {
    await model.close();
  }
  if (scored.length === 0) throw new ModelError(`${opts.from}: no row could be evaluated (${table.skipped.length} skipped: ${table.skipped[0]?.reason ?? ''})`);
  const result = evaluate(scored, version.classes);
  if (table.skipped.length > 0) process.stderr.write(`warning: ${table.skipped.length} row(s) left out: no label, or a feature of the model missing or not a number (first: line ${table.skipped[0]?.line}: ${table.skipped[0]?.reason})\n`);
  if (opts.json) {
    out(JSON.stringify({ category: version.category, version: version.version, modelSha256: version.modelSha256, file: opts.from, skippedRows: table.skipped.length, ...result }));
    return;
  }
  out(`${version.category} version ${version.version} (${version.modelSha256.slice(0, 12)}) on ${opts.from}`);
  for (const line of evaluationLines(result)) out(line);
}
