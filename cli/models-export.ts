/** What `models export` does: a version's ONNX bytes and the sidecar JSON that `models publish` reads. */
import { writeFileSync } from 'node:fs';
import { errorMessage, UsageError } from '../engine/errors.js';
import { modelBytes, readLedger, trustPolicyFor } from '../models/ledger.js';
import { configFrom, withLogAccess, type CommonOptions } from './context.js';
import { pickVersion } from './models-version.js';

export interface ExportOptions extends CommonOptions {
  category: string;
  version?: string;
  out: string;
}

/** `model.onnx` → `model.json`; a name without `.onnx` gets `.json` appended (both are what publish looks for). */
export function sidecarPath(onnxPath: string): string {
  return /\.onnx$/i.test(onnxPath) ? onnxPath.replace(/\.onnx$/i, '.json') : `${onnxPath}.json`;
}

export async function exportCommand(opts: ExportOptions, out: (line: string) => void): Promise<void> {
  const config = configFrom(opts);
  const view = await withLogAccess(config, (access) => readLedger(access, config.topics.models, trustPolicyFor(config, { generate: false })), { readOnly: true });
  const v = pickVersion(view, opts.category, opts.version);
  const bytes = modelBytes(v);
  const sidecar = sidecarPath(opts.out);
  const description = {
    featureNames: v.featureNames,
    classes: v.classes,
    category: v.category,
    version: v.version,
    sequence: v.sequence,
    modelSha256: v.modelSha256,
    trainer: v.trainer,
    metrics: v.metrics,
    trainingSnapshot: v.trainingSnapshot,
    createdAt: v.createdAt,
    recordHash: v.recordHash,
  };
  try {
    writeFileSync(opts.out, bytes);
    writeFileSync(sidecar, `${JSON.stringify(description, null, 2)}\n`);
  } catch (err) {
    throw new UsageError(`cannot write ${opts.out} / ${sidecar}: ${errorMessage(err)}`);
  }
  out(JSON.stringify({ category: v.category, version: v.version, modelSha256: v.modelSha256, out: opts.out, sidecar, bytes: bytes.length }));
}
