/**
 * `sampleloop models list | publish` (and, from cli/models-trust.ts, `keygen | checkpoint | verify`;
 * from cli/models-tools.ts, `train | evaluate | export`): the model ledger from the command line. The
 * ledger, onnxruntime and the log clients load inside each action (docs/cli.md, "Start-up").
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { errorMessage, UsageError } from '../engine/errors.js';
import type { LedgerView } from '../models/ledger.js';
import { keyIdOf } from '../models/ledger/signing.js';
import type { TrainingSnapshot } from '../schemas/types.js';
import type { CommonOptions } from './context.js';
import { registerModelTrustCommands } from './models-trust.js';
import { registerModelToolCommands } from './models-tools.js';

function withCommon(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'JSON configuration file (docs/configuration.md); SAMPLELOOP__a__b=value environment variables override it')
    .option('-d, --data-dir <dir>', 'embedded mode: where the local log and state live (overrides dataDir)');
}

function list(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function collectMetric(value: string, previous: Record<string, number> = {}): Record<string, number> {
  const at = value.indexOf('=');
  const name = value.slice(0, at).trim();
  const number = Number(value.slice(at + 1));
  if (at <= 0 || !Number.isFinite(number)) throw new UsageError(`--metric expects name=number, got "${value}"`);
  return { ...previous, [name]: number };
}

export function registerModelsCommand(program: Command, out: (line: string) => void): void {
  const models = program.command('models').description('the model ledger: list, publish and verify signed, hash-chained model versions (docs/model-cluster.md); train, evaluate and export models (docs/models.md)');

  withCommon(models.command('list').description('every version per category: version, sequence, model sha256, metrics, verified'))
    .option('--json', 'print one JSON object per version instead of a table')
    .action(async (opts: CommonOptions & { json?: boolean }) => {
      const [{ configFrom, withLogAccess }, { readLedger, trustPolicyFor }] = await Promise.all([import('./context.js'), import('../models/ledger.js')]);
      const config = configFrom(opts);
      const view = await withLogAccess(config, (access) => readLedger(access, config.topics.models, trustPolicyFor(config, { generate: false })), { readOnly: true });
      printList(view, opts.json ?? false, out);
    });

  withCommon(models.command('publish <file>').description('append a new version of a category\'s model (an .onnx file) to the ledger'))
    .requiredOption('--category <name>', 'category the model serves')
    .option('--version <label>', 'version label, unique per category (default: the new sequence number)')
    .option('--classes <a,b,...>', 'class labels in the order of the probability columns (default: sidecar JSON, model metadata, or the graph)')
    .option('--features <f1,f2,...>', 'feature names in the order of the input columns (default: sidecar JSON or model metadata)')
    .option('--trainer <name>', 'what produced the model', 'external')
    .option('--metric <name=value>', 'a metric to record, e.g. holdoutAccuracy=0.97 (repeatable)', collectMetric)
    .option('--key <file>', 'sign with this Ed25519 private key (PEM, from "models keygen") instead of models.signing.keyFile')
    .option('--snapshot <json>', 'the training snapshot the model was trained on: the `snapshot` of a retrain-triggers record ({"topic", "offsets", "sampleCount"}) or the whole record, as JSON')
    .action(async (file: string, opts: CommonOptions & { category: string; version?: string; classes?: string; features?: string; trainer: string; metric?: Record<string, number>; snapshot?: string; key?: string }) => {
      const [{ configFrom, withLogAccess }, { keyIdOf, ledgerKeysFor, publishVersion, trustPolicyFor }] = await Promise.all([import('./context.js'), import('../models/ledger.js')]);
      const loaded = configFrom(opts);
      const config = opts.key === undefined ? loaded : { ...loaded, models: { ...loaded.models, signing: { keyFile: opts.key } } };
      const trainingSnapshot = opts.snapshot !== undefined ? parseSnapshot(opts.snapshot) : null;
      const bytes = readModelFile(file);
      const { featureNames, classes } = await describeModel(bytes, file, {
        ...(opts.classes !== undefined ? { classes: list(opts.classes) } : {}),
        ...(opts.features !== undefined ? { featureNames: list(opts.features) } : {}),
      });
      const known = Object.keys(config.categories);
      if (known.length > 0 && !known.includes(opts.category)) {
        // a mistyped --category would otherwise start a ledger no request of the intended category reads
        process.stderr.write(`warning: category "${opts.category}" is not under categories in the configuration (${known.map((c) => `"${c}"`).join(', ')}); check the name\n`);
      }
      const configured = config.categories[opts.category]?.classes;
      const unknown = configured ? classes.filter((c) => !configured.includes(c)) : [];
      if (configured && unknown.length > 0) {
        throw new UsageError(
          `${file} predicts class(es) ${JSON.stringify(unknown)} that category "${opts.category}" does not have (categories.${opts.category}.classes = ${JSON.stringify(configured)}); ` +
            `the model's classes are ${JSON.stringify(classes)}: pass --classes with the category's labels in the order of the probability columns`,
        );
      }
      const published = await withLogAccess(config, (access) =>
        publishVersion(
          access,
          {
            category: opts.category,
            ...(opts.version !== undefined ? { version: opts.version } : {}),
            onnx: bytes,
            featureNames,
            classes,
            metrics: opts.metric ?? {},
            trainer: opts.trainer,
            trainingSnapshot,
            createdAt: Date.now(),
          },
          // the trust policy is the configuration's, never widened by --key: with models.trust.keys empty it
          // trusts the configured signing key (the data dir's), so a --key it does not trust is refused
          { topic: config.topics.models, signer: ledgerKeysFor(config, { generate: true }).signer, trust: trustPolicyFor(loaded, { generate: true }) },
        ),
      );
      const r = published.record;
      const previous = published.previous;
      if (previous !== undefined) {
        // the predictor swaps to the new version at its next batch: a request lacking a feature the new
        // version reads (and no default for it) becomes a missing-feature dead letter from then on
        const defaults = { ...(config.predictor.featureDefaults['*'] ?? {}), ...(config.predictor.featureDefaults[r.category] ?? {}) };
        const added = r.featureNames.filter((f) => !previous.featureNames.includes(f) && defaults[f] === undefined);
        if (added.length > 0) {
          process.stderr.write(
            `warning: version "${r.version}" reads feature(s) ${JSON.stringify(added)} that the version it replaces ("${previous.version}") did not, and predictor.featureDefaults gives no value for them: ` +
              `once the predictor swaps to it, requests without them are dead letters (missing-feature)\n`,
          );
        }
        if (previous.modelSha256 === r.modelSha256) {
          process.stderr.write(`warning: version "${r.version}" has the same ONNX bytes as version "${previous.version}", which it replaces (published twice?); the retrain trigger counts new samples from zero for it\n`);
        }
      }
      if (published.failures.length > 0) {
        process.stderr.write(`warning: the ledger holds ${published.failures.length} record(s) that fail verification (run "sampleloop models verify"); the new version links to the last verified one\n`);
      }
      out(JSON.stringify({ category: r.category, version: r.version, sequence: r.sequence, modelSha256: r.modelSha256, recordHash: r.recordHash, prevRecordHash: r.prevRecordHash, features: r.featureNames.length, classes: r.classes, signerKeyId: r.signer ? keyIdOf(r.signer) : null }));
    });

  registerModelTrustCommands(models, out);
  registerModelToolCommands(models, out);
}

/** `--snapshot`: a TrainingSnapshot as JSON, or a RetrainTrigger (its `snapshot` is taken). */
function parseSnapshot(text: string): TrainingSnapshot {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--snapshot: not JSON (${errorMessage(err)}); give the trigger's snapshot, e.g. '{"topic":"samples","offsets":[{"partition":0,"offset":348}],"sampleCount":600}'`);
  }
  const obj = parsed as Record<string, unknown> | null;
  const snap = (obj !== null && typeof obj === 'object' && typeof obj.snapshot === 'object' ? obj.snapshot : obj) as Record<string, unknown> | null;
  const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  if (
    snap === null || typeof snap !== 'object' || typeof snap.topic !== 'string' || snap.topic === '' || !isCount(snap.sampleCount) || !Array.isArray(snap.offsets) ||
    !snap.offsets.every((o: unknown) => typeof o === 'object' && o !== null && isCount((o as Record<string, unknown>).partition) && isCount((o as Record<string, unknown>).offset))
  ) {
    throw new UsageError('--snapshot: expected {"topic": <samples topic>, "offsets": [{"partition": <int>, "offset": <int>}, ...], "sampleCount": <int>} (the snapshot of a retrain-triggers record, or the record itself)');
  }
  const offsets = (snap.offsets as Array<{ partition: number; offset: number }>).map((o) => ({ partition: o.partition, offset: o.offset }));
  return { topic: snap.topic, offsets, sampleCount: snap.sampleCount };
}

function readModelFile(file: string): Buffer {
  if (!existsSync(file)) throw new UsageError(`model file ${file} does not exist`);
  return readFileSync(file);
}

interface Sidecar {
  featureNames?: string[];
  classes?: string[];
}

/** `<file>.json`, or the file name with `.onnx` replaced by `.json` (as models/sklearn/*.json). */
function readSidecar(file: string): Sidecar {
  for (const candidate of [`${file}.json`, file.replace(/\.onnx$/i, '.json')]) {
    if (candidate === file || !existsSync(candidate)) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(candidate, 'utf8'));
    } catch (err) {
      throw new UsageError(`sidecar ${candidate} is not valid JSON: ${errorMessage(err)}`);
    }
    const p = parsed as Record<string, unknown>;
    const strings = (x: unknown): string[] | undefined => (Array.isArray(x) && x.every((s) => typeof s === 'string') ? (x as string[]) : undefined);
    const sidecar: Sidecar = {};
    const featureNames = strings(p.featureNames);
    const classes = strings(p.classes);
    if (featureNames) sidecar.featureNames = featureNames;
    if (classes) sidecar.classes = classes;
    return sidecar;
  }
  return {};
}

/** Feature names and classes: flags, then the sidecar JSON, then the model's own metadata / graph; checked by loading the model. */
async function describeModel(bytes: Buffer, file: string, flags: Sidecar): Promise<{ featureNames: string[]; classes: string[] }> {
  const sidecar = readSidecar(file);
  const featureNames = flags.featureNames ?? sidecar.featureNames;
  const classes = flags.classes ?? sidecar.classes;
  const [{ inspectOnnx }, { loadOnnxModel }] = await Promise.all([import('../models/onnx-inspect.js'), import('../models/onnx-runtime.js')]);
  const graphClasses = classes ? inspectGraphClasses(bytes, inspectOnnx) : undefined;
  if (classes && graphClasses && classes.length === graphClasses.length && classes.join('\u0000') !== graphClasses.join('\u0000') && [...classes].sort().join('\u0000') === [...graphClasses].sort().join('\u0000')) {
    const from = flags.classes ? '--classes' : 'the sidecar JSON';
    throw new UsageError(`${file}: ${from} gives the classes ${JSON.stringify(classes)} but the model's graph orders its probability columns ${JSON.stringify(graphClasses)}; give them in the graph's order (or leave them out)`);
  }
  let model;
  try {
    model = await loadOnnxModel(bytes, { ...(featureNames ? { featureNames } : {}), ...(classes ? { classes } : {}) });
  } catch (err) {
    throw new UsageError(`${file} cannot be served: ${errorMessage(err)}`);
  }
  try {
    if (model.featureNames.length === 0) {
      throw new UsageError(`${file} does not name its features: pass --features f1,f2,... or write a sidecar ${file.replace(/\.onnx$/i, '.json')} with "featureNames"`);
    }
    if (model.classes.length === 0) throw new UsageError(`${file} does not name its classes: pass --classes a,b,...`);
    return { featureNames: [...model.featureNames], classes: [...model.classes] };
  } finally {
    await model.close();
  }
}

/** The class labels the graph names, or undefined (also when the bytes are not an ONNX model: loading reports that). */
function inspectGraphClasses(bytes: Buffer, inspectOnnx: (bytes: Buffer) => { graphClasses?: string[] | undefined }): string[] | undefined {
  try {
    return inspectOnnx(bytes).graphClasses;
  } catch {
    return undefined;
  }
}

function printList(view: LedgerView, json: boolean, out: (line: string) => void): void {
  if (json) {
    for (const v of view.versions) {
      const r = v.version;
      out(
        JSON.stringify({
          category: v.category,
          version: r?.version ?? null,
          sequence: r?.sequence ?? null,
          offset: v.offset,
          modelSha256: r?.modelSha256 ?? null,
          recordHash: r?.recordHash ?? null,
          createdAt: r?.createdAt ?? null,
          trainer: r?.trainer ?? null,
          metrics: r?.metrics ?? {},
          featureNames: r?.featureNames ?? null,
          classes: r?.classes ?? null,
          trainingSnapshot: r?.trainingSnapshot ?? null,
          signerKeyId: r?.signer ? keyIdOf(r.signer) : null,
          verified: v.verification.ok,
          serving: r !== undefined && view.heads.get(v.category)?.recordHash === r.recordHash && v.verification.ok,
          ...(v.verification.ok ? {} : { failure: v.verification.code, reason: v.verification.reason }),
        }),
      );
    }
    return;
  }
  if (view.versions.length === 0) {
    out('no model versions published yet (sampleloop models publish <file.onnx> --category <name>)');
    return;
  }
  const rows = [...view.byCategory.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .flatMap(([, versions]) => versions)
    .map((v) => {
      const r = v.version;
      const head = r !== undefined && v.verification.ok && view.heads.get(v.category)?.recordHash === r.recordHash;
      const metrics = Object.entries(r?.metrics ?? {})
        .map(([k, x]) => `${k}=${Number(x.toPrecision(6))}`)
        .join(' ');
      return [
        v.category,
        `${r?.version ?? '?'}${head ? ' *' : ''}`,
        String(r?.sequence ?? '?'),
        (r?.modelSha256 ?? '').slice(0, 12),
        v.verification.ok ? 'yes' : `NO (${v.verification.code})`,
        metrics,
      ];
    });
  const header = ['category', 'version', 'seq', 'sha256', 'verified', 'metrics'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number))).join('  ').trimEnd();
  out(line(header));
  for (const r of rows) out(line(r));
  out('(* = serving: the last verified version of its category)');
}
