/** What `models train` does: read the training rows, train and check a candidate, publish it. */
import type { LogAccess } from '../access/embedded.js';
import { currentSnapshot, snapshotSamples } from '../access/samples.js';
import { errorMessage, UsageError } from '../engine/errors.js';
import { ModelError } from '../models/model-error.js';
import { ledgerClient, ledgerKeysFor } from '../models/ledger.js';
import { fileSnapshot, trainOffline } from '../models/train-offline.js';
import { buildTrainingSet, trainerSettingsFromConfig, type TrainingRow } from '../models/trainer-job.js';
import type { TrainingSnapshot } from '../schemas/types.js';
import { configFrom, withLogAccess, type CommonOptions } from './context.js';
import { readLabeledTable, sha256OfFile } from './table-file.js';

export interface TrainCommandOptions extends CommonOptions {
  category: string;
  from: string;
  label: string;
  featureList?: string[];
  id?: string;
  excludeList?: string[];
  format?: string;
  delimiter: string;
  dryRun?: boolean;
}

interface TrainingData {
  rows: TrainingRow[];
  featureNames: string[];
  snapshot: TrainingSnapshot;
  skipped: number;
}

export async function trainCommand(opts: TrainCommandOptions, out: (line: string) => void): Promise<void> {
  const config = configFrom(opts);
  const settings = trainerSettingsFromConfig(config);
  const configuredClasses = config.categories[opts.category]?.classes;
  const fromFile = opts.from !== 'samples';
  // read the file before opening the log: a bad file must not hold the data dir
  const fileData = fromFile ? await fileTrainingData(opts) : undefined;
  const outcome = await withLogAccess(config, async (access) => {
    const data = fileData ?? (await samplesTrainingData(access, config.topics.samples, opts.category, configuredClasses));
    // signed with the publisher's key and read under the trust policy, as the built-in trainer does:
    // an unsigned version would be published but never served (the predictor refuses it)
    const ledger = ledgerClient(access, config.topics.models, ledgerKeysFor(config, { generate: true }));
    const serving = await ledger.latest(opts.category);
    const result = await trainOffline({
      category: opts.category,
      rows: data.rows,
      featureNames: data.featureNames,
      ...(configuredClasses ? { configuredClasses } : {}),
      snapshot: data.snapshot,
      ...(serving ? { serving } : {}),
      usedVersions: await ledger.versions(opts.category),
      settings,
    });
    if (result.ok && !opts.dryRun) {
      const published = await ledger.publishVersion(result.version);
      return { result, data, sequence: published.record.sequence };
    }
    return { result, data, sequence: undefined };
  });
  const { result, data } = outcome;
  if (data.skipped > 0) process.stderr.write(`warning: ${data.skipped} row(s) left out (no label, a feature missing or not a number, or a label outside the category's classes)\n`);
  if (!result.ok) throw new ModelError(`not published (${result.reason}): ${result.message}`);
  const v = result.version;
  out(
    JSON.stringify({
      category: v.category,
      version: v.version,
      published: !opts.dryRun,
      ...(outcome.sequence !== undefined ? { sequence: outcome.sequence } : {}),
      modelSha256: v.modelSha256,
      features: v.featureNames,
      classes: v.classes,
      metrics: v.metrics,
      trainingSnapshot: v.trainingSnapshot,
    }),
  );
}

async function fileTrainingData(opts: TrainCommandOptions): Promise<TrainingData> {
  const table = await readLabeledTable(opts.from, {
    label: opts.label,
    delimiter: opts.delimiter,
    ...(opts.format === 'csv' || opts.format === 'jsonl' ? { format: opts.format } : {}),
    ...(opts.featureList ? { features: opts.featureList } : {}),
    ...(opts.id !== undefined ? { id: opts.id } : {}),
    ...(opts.excludeList ? { exclude: opts.excludeList } : {}),
  });
  const ids = new Set<string>();
  for (const r of table.rows) {
    if (ids.has(r.id)) throw new UsageError(`--id column "${opts.id}" holds "${r.id}" twice (line ${r.line}); row IDs decide the holdout and must be unique`);
    ids.add(r.id);
  }
  const rows: TrainingRow[] = table.rows.map((r) => ({
    requestId: r.id,
    vector: r.vector,
    label: r.label,
    features: Object.fromEntries(table.featureNames.map((f, i) => [f, r.vector[i] as number])),
  }));
  let sha256: string;
  try {
    sha256 = await sha256OfFile(opts.from);
  } catch (err) {
    throw new UsageError(`cannot read ${opts.from}: ${errorMessage(err)}`);
  }
  return { rows, featureNames: table.featureNames, snapshot: fileSnapshot(sha256, table.rows.length + table.skipped.length), skipped: table.skipped.length };
}

async function samplesTrainingData(access: LogAccess, topic: string, category: string, configuredClasses: readonly string[] | undefined): Promise<TrainingData> {
  const snapshot = await currentSnapshot(access, topic);
  const { samples, undecodable } = await snapshotSamples(access, snapshot, category);
  if (samples.length === 0) throw new UsageError(`the "${topic}" topic holds no sample of category "${category}"`);
  const set = buildTrainingSet(samples, configuredClasses);
  return { rows: set.rows, featureNames: set.featureNames, snapshot: { ...snapshot, sampleCount: samples.length }, skipped: set.skipped + undecodable };
}
