/**
 * Predictor benchmark: records/s of the predictor topology (requests → decode → ONNX predictor →
 * Avro predictions, committed to the embedded log) versus raw onnxruntime `session.run` on the same
 * model with the same batch sizes, and `loadOnnxModel().predictBatch` in between. overhead = raw / topology.
 * Run: `npm run build && node --expose-gc dist/bench/predictor.js [--requests N] [--rounds 3] [--batches 50,500,2000] [--models digits,breast-cancer] [--no-write]`.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { parseConfig } from '../config/config.js';
import { directAccess } from '../access/embedded.js';
import { openEmbeddedLog, privacyPolicyFor } from '../app/embedded.js';
import { rocksRegistryStorage } from '../schemas/registry-storage.js';
import { EmbeddedRuntime } from '../engine/embedded/runtime.js';
import { UsageError } from '../engine/errors.js';
import { silentLogger } from '../engine/logger.js';
import { EngineMetrics } from '../engine/metrics.js';
import { packageRoot } from '../config/paths.js';
import { loadDataset, type Dataset } from '../models/datasets/index.js';
import { ledgerKeysFor, publishVersion } from '../models/ledger.js';
import { defaultTrainOptions, trainLogistic } from '../models/logistic-regression.js';
import { exportOnnx } from '../models/onnx-export.js';
import { inspectOnnx } from '../models/onnx-inspect.js';
import type { ModelRegistry } from '../models/model-registry.js';
import { loadOnnxModel, sessionOptions } from '../models/onnx-runtime.js';
import { encodeFramed } from '../schemas/codec.js';
import { schemaJson } from '../schemas/index.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import type { DeadLetterEnvelope } from '../engine/task.js';
import { embeddedPredictor, ensureModelsTopic } from '../topologies/predictor.js';
import { collectGarbage, formatTable, isMainModule, machineInfo, rate, resultPath, writeResult, type MachineInfo } from './measure.js';

export type BenchModel = 'digits' | 'breast-cancer';

export interface PredictorBenchOptions {
  requests: number;
  /** Each measurement is repeated this often; the median is reported (the machine may be busy). */
  rounds: number;
  batches: number[];
  models: BenchModel[];
  resultFile: string | null;
  out: (line: string) => void;
}

export const DEFAULT_PREDICTOR_OPTIONS: PredictorBenchOptions = {
  requests: 20_000,
  rounds: 3,
  batches: [50, 500, 2000],
  models: ['digits', 'breast-cancer'],
  resultFile: resultPath('predictor'),
  out: (line) => console.log(line),
};

export interface PredictorRow {
  model: string;
  batch: number;
  requests: number;
  /** onnxruntime `session.run` on pre-built input tensors. */
  raw: Rate;
  /** `OnnxModel.predictBatch`: builds the tensor from rows, maps probabilities to labels and score maps. */
  predictBatch: Rate;
  /** The predictor topology on the embedded engine: decode, predictor, Avro encoding, commits. */
  topology: Rate;
  /** raw / topology per CPU-second: how many times more CPU a prediction costs through the topology than inference alone. */
  overheadCpu: number;
  overheadWall: number;
}

export interface PredictorBenchResult {
  benchmark: 'predictor';
  at: string;
  machine: MachineInfo;
  /** 1-minute load average at start and end: wall-clock rates are only comparable on an idle machine. */
  loadAverage: { start: number; end: number };
  options: { requests: number; rounds: number; batches: number[]; models: BenchModel[] };
  rows: PredictorRow[];
}

interface ModelUnderTest {
  name: string;
  category: string;
  bytes: Uint8Array;
  featureNames: string[];
  classes: string[];
  dataset: Dataset;
}

function modelsUnderTest(names: BenchModel[]): ModelUnderTest[] {
  return names.map((name) => {
    const dataset = loadDataset(name);
    if (name === 'digits') {
      const model = trainLogistic(dataset.rows, dataset.featureNames, dataset.classes, defaultTrainOptions);
      return { name: 'digits (sampleloop logistic, float64)', category: 'digits', bytes: exportOnnx(model, { version: '1', category: 'digits' }), featureNames: dataset.featureNames, classes: dataset.classes, dataset };
    }
    const dir = join(packageRoot(), 'models', 'sklearn');
    const sidecar = JSON.parse(readFileSync(join(dir, 'breast-cancer-sklearn.json'), 'utf8')) as { featureNames: string[]; classes: string[] };
    return { name: 'breast-cancer (scikit-learn, float32)', category: 'breast-cancer', bytes: readFileSync(join(dir, 'breast-cancer-sklearn.onnx')), featureNames: sidecar.featureNames, classes: sidecar.classes, dataset };
  });
}

interface Rate {
  /** Records per wall-clock second. */
  wall: number;
  /** Records per CPU-second of the process (all threads: onnxruntime's and RocksDB's included); robust on a busy machine. */
  cpu: number;
}

async function timed(records: number, work: () => Promise<void>): Promise<Rate> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  await work();
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { wall: records / seconds, cpu: records / ((used.user + used.system) / 1e6) };
}

async function medianOf(rounds: number, measure: () => Promise<Rate>): Promise<Rate> {
  const results: Rate[] = [];
  for (let i = 0; i < rounds; i++) results.push(await measure());
  const median = (values: number[]): number => values.sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
  return { wall: median(results.map((r) => r.wall)), cpu: median(results.map((r) => r.cpu)) };
}

/** Repeats `pass` (over `records` records) until at least `minMs` have passed: inference alone is too quick to time once. */
async function timedRepeat(records: number, pass: () => Promise<void>, minMs = 1000): Promise<Rate> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  let done = 0;
  do {
    await pass();
    done += records;
  } while (performance.now() - started < minMs);
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { wall: done / seconds, cpu: done / ((used.user + used.system) / 1e6) };
}

/** Row i of the benchmark traffic: the dataset's rows, cycled. */
function rowAt(m: ModelUnderTest, i: number): number[] {
  return (m.dataset.rows[i % m.dataset.rows.length] as { features: number[] }).features;
}

async function rawRun(m: ModelUnderTest, requests: number, batch: number): Promise<Rate> {
  const session = await ort.InferenceSession.create(inspectOnnx(m.bytes).bytes, sessionOptions);
  try {
    const input = session.inputMetadata[0] as ort.InferenceSession.TensorValueMetadata;
    const width = m.featureNames.length;
    const tensors: ort.Tensor[] = [];
    for (let start = 0; start < requests; start += batch) {
      const n = Math.min(batch, requests - start);
      const data = input.type === 'float32' ? new Float32Array(n * width) : new Float64Array(n * width);
      for (let r = 0; r < n; r++) data.set(rowAt(m, start + r), r * width);
      tensors.push(new ort.Tensor(input.type as 'float32' | 'float64', data, [n, width]));
    }
    await session.run({ [input.name]: tensors[0] as ort.Tensor }); // warm-up
    return await timedRepeat(requests, async () => {
      for (const t of tensors) await session.run({ [input.name]: t });
    });
  } finally {
    await session.release();
  }
}

async function predictBatchRun(m: ModelUnderTest, requests: number, batch: number): Promise<Rate> {
  const model = await loadOnnxModel(m.bytes, { featureNames: m.featureNames, classes: m.classes });
  try {
    const batches: Float64Array[][] = [];
    for (let start = 0; start < requests; start += batch) {
      const rows: Float64Array[] = [];
      for (let r = start; r < Math.min(start + batch, requests); r++) rows.push(Float64Array.from(rowAt(m, r)));
      batches.push(rows);
    }
    await model.predictBatch(batches[0] as Float64Array[]);
    return await timedRepeat(requests, async () => {
      for (const rows of batches) await model.predictBatch(rows);
    });
  } finally {
    await model.close();
  }
}

/** The predictor topology alone in an embedded runtime (the samples topology, which `run` adds, is left out). */
async function topologyRun(m: ModelUnderTest, requests: number, batch: number): Promise<Rate> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sampleloop-bench-predictor-'));
  const config = parseConfig({ dataDir, log: { level: 'silent' }, privacy: { keyEnv: 'SAMPLELOOP_BENCH_UNUSED_KEY' }, predictor: { enabled: true } });
  const log = await openEmbeddedLog(config);
  let models: ModelRegistry | undefined;
  try {
    const registry = new LocalSchemaRegistry(rocksRegistryStorage(log.db));
    const privacy = privacyPolicyFor(config, true);
    const deadLetterId = await registry.register(`${config.topics.deadLetters}-value`, schemaJson('DeadLetter'));
    ensureModelsTopic(log, config.topics.models);
    const predictor = await embeddedPredictor(config, { log, registry, privacy });
    models = predictor.models;
    const runtime = new EmbeddedRuntime(log, [predictor.topology], {
      applicationId: config.applicationId,
      logger: silentLogger(),
      metrics: new EngineMetrics(),
      deadLetterTopic: config.topics.deadLetters,
      encodeDeadLetter: (envelope: DeadLetterEnvelope) => encodeFramed('DeadLetter', deadLetterId, envelope),
      commitIntervalMs: config.embedded.commitIntervalMs,
    });
    runtime.start();
    const access = directAccess(log, registry);
    await publishVersion(access, { category: m.category, onnx: m.bytes, featureNames: m.featureNames, classes: m.classes, createdAt: Date.now() }, ledgerKeysFor(config, { generate: true }));
    const lines: string[] = [];
    const t0 = 1_750_000_000_000;
    for (let i = 0; i < requests; i++) {
      const row = rowAt(m, i);
      const features: Record<string, number> = {};
      m.featureNames.forEach((f, j) => {
        features[f] = row[j] as number;
      });
      lines.push(JSON.stringify({ requestId: `r-${i}`, category: m.category, features, attributes: { name: 'Ada Lovelace' }, timestamp: t0 + i }));
    }
    await access.produce(config.topics.requests, lines.join('\n'));
    collectGarbage();
    const result = await timed(requests, async () => {
      for (;;) {
        const n = await runtime.stepAsync(batch);
        if (n === 0) break;
      }
      runtime.commit();
    });
    runtime.close();
    const written = log.endOffset(config.topics.predictions, 0);
    if (written !== requests) throw new Error(`predictor bench: wrote ${written} predictions for ${requests} requests`);
    return result;
  } finally {
    await models?.close();
    await log.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export async function runPredictorBench(options: PredictorBenchOptions): Promise<PredictorBenchResult> {
  const load = loadavg()[0] ?? 0;
  const rows: PredictorRow[] = [];
  for (const m of modelsUnderTest(options.models)) {
    for (const batch of options.batches) {
      const raw = await medianOf(options.rounds, () => rawRun(m, options.requests, batch));
      const predictBatch = await medianOf(options.rounds, () => predictBatchRun(m, options.requests, batch));
      const topology = await medianOf(options.rounds, () => topologyRun(m, options.requests, batch));
      rows.push({ model: m.name, batch, requests: options.requests, raw, predictBatch, topology, overheadCpu: raw.cpu / topology.cpu, overheadWall: raw.wall / topology.wall });
    }
  }
  const result: PredictorBenchResult = { benchmark: 'predictor', at: new Date().toISOString(), machine: machineInfo(), loadAverage: { start: load, end: loadavg()[0] ?? 0 }, options: { requests: options.requests, rounds: options.rounds, batches: options.batches, models: options.models }, rows };
  options.out(
    formatTable(
      ['model', 'batch', 'session.run rec/cpu-s', 'predictBatch rec/cpu-s', 'topology rec/cpu-s', 'raw/topology (cpu)', 'topology rec/s (wall)', 'raw/topology (wall)'],
      rows.map((r) => [r.model, String(r.batch), rate(r.raw.cpu), rate(r.predictBatch.cpu), rate(r.topology.cpu), r.overheadCpu.toFixed(1), rate(r.topology.wall), r.overheadWall.toFixed(1)]),
    ),
  );
  if (options.resultFile) writeResult(options.resultFile, result);
  return result;
}

export function predictorOptionsFromArgs(args: readonly string[]): PredictorBenchOptions {
  const { values } = parseArgs({ args: [...args], strict: false, options: { requests: { type: 'string' }, rounds: { type: 'string' }, batches: { type: 'string' }, models: { type: 'string' }, 'no-write': { type: 'boolean' } } });
  const options = { ...DEFAULT_PREDICTOR_OPTIONS };
  if (typeof values.requests === 'string') options.requests = positive(values.requests, '--requests');
  if (typeof values.rounds === 'string') options.rounds = positive(values.rounds, '--rounds');
  if (typeof values.batches === 'string') options.batches = values.batches.split(',').map((b) => positive(b, '--batches'));
  if (typeof values.models === 'string') {
    options.models = values.models.split(',').map((m) => {
      if (m !== 'digits' && m !== 'breast-cancer') throw new UsageError(`--models accepts digits and breast-cancer, got "${m}"`);
      return m;
    });
  }
  if (values['no-write'] === true) options.resultFile = null;
  return options;
}

function positive(text: string, flag: string): number {
  const n = Number.parseInt(text, 10);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`${flag} must be a positive integer, got "${text}"`);
  return n;
}

if (isMainModule(import.meta.url)) {
  runPredictorBench(predictorOptionsFromArgs(process.argv.slice(2))).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
