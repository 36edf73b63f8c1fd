/**
 * Join benchmark: (a) the limit — decode + validate every input and encode one LabeledSample per
 * prediction, nothing else — versus (b) the full embedded engine on the same pre-generated traffic.
 * Run: `npm run build && node --expose-gc dist/bench/join.js [--predictions N]` (see docs/benchmarks.md).
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig } from '../config/config.js';
import { startEmbeddedApp, type EmbeddedApp } from '../app/embedded.js';
import { DecodeError, StateError, UsageError } from '../engine/errors.js';
import { silentLogger } from '../engine/logger.js';
import { EngineMetrics } from '../engine/metrics.js';
import type { OutputRecord } from '../engine/record.js';
import { buildSample } from '../processors/labeling.js';
import { decodeRecord, encodeFramed, type DecodeOptions } from '../schemas/codec.js';
import { schemaJson } from '../schemas/index.js';
import { LocalSchemaRegistry, type SchemaRegistry } from '../schemas/registry.js';
import type { Prediction } from '../schemas/types.js';
import {
  collectGarbage,
  cpuDelta,
  formatTable,
  isMainModule,
  machineInfo,
  MemoryTracker,
  mib,
  rate,
  resultPath,
  threadCpuSeconds,
  weightedPercentile,
  writeResult,
  type MachineInfo,
  type MemoryPeak,
} from './measure.js';
import { FLOOR_VARIANTS, measureStorageFloor, type FloorResult } from './join-floor.js';
import { topSelfTimeTable, withCpuProfile } from './profile-summary.js';
import { generateBenchTraffic, type BenchTraffic, type InputFormat } from './traffic.js';

export type JoinPhase = 'limit' | 'join' | 'floor';

export interface JoinBenchOptions {
  predictions: number;
  /** Input records appended (and then processed with runUntilIdle) per chunk. */
  chunk: number;
  formats: InputFormat[];
  phases: JoinPhase[];
  /** Join window of the engine run; the short default lets windows close during the run (steady state). */
  afterMs: number;
  graceMs: number;
  seed: number;
  /** Abort the embedded run when RSS exceeds this (a leak in the engine must not take the machine down). */
  maxRssBytes: number;
  /** When set, each measured phase is CPU-profiled into this directory (`<phase>-<format>.cpuprofile`). */
  profileDir: string | null;
  /** Where the JSON results go; null to skip writing. */
  resultFile: string | null;
  out: (line: string) => void;
}

/**
 * 1M + 1M records take far more than 5 minutes on the reference machine (docs/benchmarks.md), so
 * the default is the largest size that fits in about that; run `--predictions 1000000` for the doc figures.
 */
export const DEFAULT_JOIN_OPTIONS: JoinBenchOptions = {
  predictions: 100_000,
  chunk: 1000,
  formats: ['json', 'avro'],
  phases: ['limit', 'floor', 'join'],
  afterMs: 60_000,
  graceMs: 10_000,
  seed: 42,
  maxRssBytes: Math.floor(totalmem() * 0.5),
  profileDir: null,
  resultFile: resultPath('join'),
  out: (line) => console.log(line),
};

export interface LimitResult {
  format: InputFormat;
  records: number;
  seconds: number;
  /** Process CPU time (user + system, all threads) inside the measured intervals. */
  cpuSeconds: number;
  recordsPerSecond: number;
  recordsPerCpuSecond: number;
  /** Per CPU-second of the main (JavaScript) thread alone, over the whole phase. */
  recordsPerMainThreadCpuSecond: number;
  samplesEncoded: number;
  bytesIn: number;
  bytesOut: number;
}

export interface OutputCounts {
  samples: number;
  unmatched: number;
  review: number;
  orphans: number;
  late: number;
  deadLetters: number;
}

export interface EmbeddedJoinResult {
  format: InputFormat;
  records: number;
  chunks: number;
  /** append + runUntilIdle of every chunk, plus the final endOfInput. */
  seconds: number;
  appendSeconds: number;
  processSeconds: number;
  endOfInputSeconds: number;
  /** Process CPU time (user + system, all threads incl. RocksDB's) inside the measured intervals. */
  cpuSeconds: number;
  recordsPerSecond: number;
  recordsPerCpuSecond: number;
  /** Per CPU-second of the main (JavaScript) thread alone, over the whole phase (incl. building chunks). */
  recordsPerMainThreadCpuSecond: number;
  /** CPU seconds per thread group over the whole phase: main (JavaScript), rocksdb (flush/compaction), other (V8 GC/JIT helpers, libuv). */
  threadCpuSeconds: Record<string, number>;
  /** Throughput of processing alone (the log append is the producer's cost). */
  processRecordsPerSecond: number;
  latencyMs: { p50: number; p99: number; max: number; method: string };
  memory: MemoryPeak;
  outputs: OutputCounts;
  dataDirBytes: number;
}

export interface JoinBenchResult {
  benchmark: 'join';
  at: string;
  machine: MachineInfo;
  /** 1-minute load average when the run started and ended (other work on the machine skews wall-clock figures). */
  loadAverage: { start: number; end: number };
  options: Omit<JoinBenchOptions, 'out' | 'resultFile' | 'profileDir'>;
  traffic: { predictions: number; feedback: number; spanSeconds: number; generationSeconds: number; bytes: Partial<Record<InputFormat, number>>; expected: BenchTraffic['expected'] };
  limit: LimitResult[];
  /** (c) the storage floor: the durable work of the embedded design with no join logic (bench/join-floor.ts). */
  floor: FloorResult[];
  join: EmbeddedJoinResult[];
  ratios: Array<{ format: InputFormat; joinOverLimit: number; processOnlyOverLimit: number; joinOverLimitCpu: number; joinOverLimitMainThread: number }>;
  /** Main-thread CPU ratio of each floor variant to the limit: what the join could reach with zero join logic. */
  floorRatios: Array<{ format: InputFormat; variant: FloorResult['variant']; floorOverLimitMainThread: number }>;
  target: number;
}

export const TARGET_RATIO = 0.5;
const LATENCY_METHOD =
  'per chunk: every record of a chunk gets (time runUntilIdle returned, i.e. its final commit) − (time log.append of the chunk was called); p50/p99 over records';
const MAX_RECORD_BYTES = 1024 * 1024;

const inputSchema = (traffic: BenchTraffic, event: number): 'Prediction' | 'Feedback' =>
  traffic.kind(event) === 'prediction' ? 'Prediction' : 'Feedback';

async function registerInputSchemas(registry: SchemaRegistry, traffic: BenchTraffic): Promise<void> {
  const predictionId = await registry.register('predictions-value', schemaJson('Prediction'));
  const feedbackId = await registry.register('feedback-value', schemaJson('Feedback'));
  traffic.setAvroSchemaIds(predictionId, feedbackId);
}

/** (a): decode + validate each input, encode one LabeledSample per prediction. Only that is timed. */
export async function measureLimit(traffic: BenchTraffic, format: InputFormat, batch: number): Promise<LimitResult> {
  const registry = new LocalSchemaRegistry();
  if (format === 'avro') await registerInputSchemas(registry, traffic);
  const sampleSchemaId = await registry.register('samples-value', schemaJson('LabeledSample'));
  const decodeOptions: DecodeOptions = { maxBytes: MAX_RECORD_BYTES, writerSchema: (id) => registry.cached(id) };
  const views: Buffer[] = new Array(batch);
  const schemas: Array<'Prediction' | 'Feedback'> = new Array(batch);
  let seconds = 0;
  let cpuMicros = 0;
  let bytesIn = 0;
  let bytesOut = 0;
  let samples = 0;
  collectGarbage();
  const threadsBefore = threadCpuSeconds();
  for (let from = 0; from < traffic.events; from += batch) {
    const count = Math.min(batch, traffic.events - from);
    for (let k = 0; k < count; k++) {
      views[k] = traffic.bytes(format, from + k);
      schemas[k] = inputSchema(traffic, from + k);
    }
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (let k = 0; k < count; k++) {
      const bytes = views[k] as Buffer;
      const schema = schemas[k] as 'Prediction' | 'Feedback';
      const result = decodeRecord(schema, bytes, decodeOptions);
      if (!result.ok) throw new DecodeError(`benchmark input ${from + k} (${format}) was rejected: ${result.reasonCode}: ${result.reason}`);
      bytesIn += bytes.length;
      if (schema === 'Prediction') {
        const p = result.value as Prediction;
        const sample = buildSample(p, { label: p.predictedLabel, labelSource: 'CONFIRMED' }, p.timestamp, 0, 'online');
        bytesOut += encodeFramed('LabeledSample', sampleSchemaId, sample).length;
        samples++;
      }
    }
    seconds += (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    cpuMicros += used.user + used.system;
  }
  const cpuSeconds = cpuMicros / 1e6;
  const mainThread = cpuDelta(threadsBefore, threadCpuSeconds()).main ?? cpuSeconds;
  return {
    format,
    records: traffic.events,
    seconds,
    cpuSeconds,
    recordsPerSecond: traffic.events / seconds,
    recordsPerCpuSecond: traffic.events / cpuSeconds,
    recordsPerMainThreadCpuSecond: traffic.events / mainThread,
    samplesEncoded: samples,
    bytesIn,
    bytesOut,
  };
}

function chunkRecords(traffic: BenchTraffic, format: InputFormat, app: EmbeddedApp, from: number, count: number): OutputRecord[] {
  const { predictions, feedback } = app.config.topics;
  const records: OutputRecord[] = new Array(count);
  for (let k = 0; k < count; k++) {
    const event = from + k;
    records[k] = {
      topic: traffic.kind(event) === 'prediction' ? predictions : feedback,
      key: Buffer.from(traffic.requestId(event), 'utf8'),
      value: traffic.bytes(format, event),
      timestamp: traffic.timestamp(event),
      headers: {},
    };
  }
  return records;
}

function countOutputs(app: EmbeddedApp): OutputCounts {
  const total = (topic: string): number => {
    const config = app.log.topic(topic);
    let n = 0;
    for (let p = 0; p < (config?.partitions ?? 0); p++) n += app.log.endOffset(topic, p);
    return n;
  };
  const t = app.config.topics;
  return {
    samples: total(t.samples),
    unmatched: total(t.unmatched),
    review: total(t.review),
    orphans: total(t.orphans),
    late: total(t.late),
    deadLetters: total(t.deadLetters),
  };
}

function directoryBytes(dir: string): number {
  let n = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    n += entry.isDirectory() ? directoryBytes(path) : statSync(path).size;
  }
  return n;
}

/** (b): the full engine on a fresh temp dir; records appended in event-time order, chunk by chunk. */
export async function measureEmbeddedJoin(
  traffic: BenchTraffic,
  format: InputFormat,
  options: Pick<JoinBenchOptions, 'chunk' | 'afterMs' | 'graceMs' | 'maxRssBytes'>,
  progress: (line: string) => void = () => {},
): Promise<EmbeddedJoinResult> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sampleloop-bench-join-'));
  const config = parseConfig({
    dataDir,
    log: { level: 'silent' },
    join: { afterMs: options.afterMs, graceMs: options.graceMs },
    categories: { fraud: { classes: ['fraud', 'legit'] }, intent: { classes: ['billing', 'support', 'sales', 'cancel'] } },
  });
  const app = await startEmbeddedApp(config, { logger: silentLogger(), metrics: new EngineMetrics() });
  try {
    if (format === 'avro') await registerInputSchemas(app.registry, traffic);
    const latencies: number[] = [];
    const weights: number[] = [];
    let appendMs = 0;
    let processMs = 0;
    let cpuMicros = 0;
    collectGarbage();
    const memory = new MemoryTracker();
    const threadsBefore = threadCpuSeconds();
    let nextReport = 0.1;
    for (let from = 0; from < traffic.events; from += options.chunk) {
      const count = Math.min(options.chunk, traffic.events - from);
      const records = chunkRecords(traffic, format, app, from, count);
      const cpu = process.cpuUsage();
      const appendCalled = performance.now();
      app.log.append(records);
      const appended = performance.now();
      app.runtime.runUntilIdle();
      const committed = performance.now();
      const used = process.cpuUsage(cpu);
      cpuMicros += used.user + used.system;
      appendMs += appended - appendCalled;
      processMs += committed - appended;
      latencies.push(committed - appendCalled);
      weights.push(count);
      const rss = memory.sample();
      if (rss > options.maxRssBytes) {
        throw new StateError(
          `the embedded run reached ${mib(rss)} RSS after ${from + count} records, over the ${mib(options.maxRssBytes)} limit (--max-rss-mib): ` +
            'memory grows with the input, which a bounded join window should not do; profile it with --profile',
        );
      }
      if ((from + count) / traffic.events >= nextReport) {
        progress(`    ${Math.round(nextReport * 100)}%: ${rate((from + count) / ((appendMs + processMs) / 1000))} records/s so far, RSS ${mib(rss)}`);
        nextReport += 0.1;
      }
      // Let the event loop turn between chunks, as runtime.run() does: N-API finalizers
      // (freeing native RocksDB batches and iterators) only run then. Not timed.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const endCpu = process.cpuUsage();
    const endStarted = performance.now();
    app.runtime.endOfInput();
    const endOfInputMs = performance.now() - endStarted;
    const endUsed = process.cpuUsage(endCpu);
    cpuMicros += endUsed.user + endUsed.system;
    const threadCpu = cpuDelta(threadsBefore, threadCpuSeconds());
    const seconds = (appendMs + processMs + endOfInputMs) / 1000;
    const outputs = countOutputs(app);
    return {
      format,
      records: traffic.events,
      chunks: latencies.length,
      seconds,
      appendSeconds: appendMs / 1000,
      processSeconds: processMs / 1000,
      endOfInputSeconds: endOfInputMs / 1000,
      cpuSeconds: cpuMicros / 1e6,
      recordsPerSecond: traffic.events / seconds,
      recordsPerCpuSecond: traffic.events / (cpuMicros / 1e6),
      recordsPerMainThreadCpuSecond: traffic.events / (threadCpu.main ?? cpuMicros / 1e6),
      threadCpuSeconds: threadCpu,
      processRecordsPerSecond: traffic.events / ((processMs + endOfInputMs) / 1000),
      latencyMs: {
        p50: weightedPercentile(latencies, weights, 50),
        p99: weightedPercentile(latencies, weights, 99),
        max: Math.max(...latencies),
        method: LATENCY_METHOD,
      },
      memory: memory.result(),
      outputs,
      dataDirBytes: directoryBytes(dataDir),
    };
  } finally {
    await app.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The engine's outputs must be exactly what the traffic implies, or the throughput means nothing. */
export function checkOutputs(outputs: OutputCounts, expected: BenchTraffic['expected']): void {
  assert.deepEqual(outputs, { samples: expected.samples, unmatched: expected.unmatched, review: expected.review, orphans: 0, late: 0, deadLetters: 0 });
}

export async function runJoinBench(partial: Partial<JoinBenchOptions> = {}): Promise<JoinBenchResult> {
  const options: JoinBenchOptions = { ...DEFAULT_JOIN_OPTIONS, ...partial };
  const say = options.out;
  const n = options.predictions;
  const loadStart = loadavg()[0] as number;
  say(`join benchmark: ${n.toLocaleString('en-US')} predictions + ${n.toLocaleString('en-US')} feedback, formats ${options.formats.join(', ')}, chunk ${options.chunk}`);
  const generationStarted = performance.now();
  const traffic = generateBenchTraffic({ predictions: n, seed: options.seed, formats: options.formats });
  const generationSeconds = (performance.now() - generationStarted) / 1000;
  const bytes: Partial<Record<InputFormat, number>> = {};
  for (const f of options.formats) bytes[f] = traffic.totalBytes(f);
  say(`  generated in ${generationSeconds.toFixed(1)} s (not measured): ${options.formats.map((f) => `${f} ${mib(traffic.totalBytes(f))}`).join(', ')}`);

  const limit: LimitResult[] = [];
  const joins: EmbeddedJoinResult[] = [];
  if (options.phases.includes('limit')) {
    for (const format of options.formats) {
      const { value: r, profile } = await withCpuProfile(profilePath(options, 'limit', format), () => measureLimit(traffic, format, options.chunk));
      limit.push(r);
      if (profile) say(indent(topSelfTimeTable(profile, 8)));
      say(`  limit ${format}: ${rate(r.recordsPerSecond)} records/s (${r.seconds.toFixed(1)} s)`);
    }
  }
  const floor: FloorResult[] = [];
  if (options.phases.includes('floor')) {
    for (const format of options.formats) {
      for (const variant of FLOOR_VARIANTS) {
        const r = await measureStorageFloor(traffic, format, variant, options.chunk, (registry) => registerInputSchemas(registry, traffic));
        assert.equal(r.samples, traffic.predictions, `floor ${variant} ${format}: every prediction has feedback, so every one must give a sample`);
        floor.push(r);
        say(`  floor ${variant} ${format}: ${rate(r.recordsPerSecond)} records/s (${r.seconds.toFixed(1)} s)`);
      }
    }
  }
  if (options.phases.includes('join')) {
    for (const format of options.formats) {
      const { value: r, profile } = await withCpuProfile(profilePath(options, 'join', format), () => measureEmbeddedJoin(traffic, format, options, say));
      checkOutputs(r.outputs, traffic.expected);
      joins.push(r);
      if (profile) say(indent(topSelfTimeTable(profile, 12)));
      say(`  embedded join ${format}: ${rate(r.recordsPerSecond)} records/s (${r.seconds.toFixed(1)} s), outputs checked`);
    }
  }
  const ratios = options.formats.flatMap((format) => {
    const a = limit.find((r) => r.format === format);
    const b = joins.find((r) => r.format === format);
    return a && b
      ? [
          {
            format,
            joinOverLimit: b.recordsPerSecond / a.recordsPerSecond,
            processOnlyOverLimit: b.processRecordsPerSecond / a.recordsPerSecond,
            joinOverLimitCpu: b.recordsPerCpuSecond / a.recordsPerCpuSecond,
            joinOverLimitMainThread: b.recordsPerMainThreadCpuSecond / a.recordsPerMainThreadCpuSecond,
          },
        ]
      : [];
  });
  const floorRatios = floor.flatMap((f) => {
    const a = limit.find((r) => r.format === f.format);
    return a ? [{ format: f.format, variant: f.variant, floorOverLimitMainThread: f.recordsPerMainThreadCpuSecond / a.recordsPerMainThreadCpuSecond }] : [];
  });
  const { out: _out, resultFile: _file, profileDir: _profiles, ...recorded } = options;
  const result: JoinBenchResult = {
    benchmark: 'join',
    at: new Date().toISOString(),
    machine: machineInfo(),
    loadAverage: { start: loadStart, end: loadavg()[0] as number },
    options: recorded,
    traffic: { predictions: n, feedback: n, spanSeconds: traffic.spanMs / 1000, generationSeconds, bytes, expected: traffic.expected },
    limit,
    floor,
    join: joins,
    ratios,
    floorRatios,
    target: TARGET_RATIO,
  };
  say('');
  say(joinTable(result));
  if (options.resultFile !== null) {
    writeResult(options.resultFile, result);
    say(`\nresults written to ${options.resultFile}`);
  }
  return result;
}

function profilePath(options: JoinBenchOptions, phase: JoinPhase, format: InputFormat): string | null {
  return options.profileDir === null ? null : join(options.profileDir, `${phase}-${format}.cpuprofile`);
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');
}

export function joinTable(result: JoinBenchResult): string {
  const rows: string[][] = [];
  for (const r of result.limit) {
    rows.push([
      '(a) limit: decode+encode',
      r.format,
      r.records.toLocaleString('en-US'),
      r.seconds.toFixed(2),
      rate(r.recordsPerSecond),
      rate(r.recordsPerCpuSecond),
      rate(r.recordsPerMainThreadCpuSecond),
      '',
      '',
      '',
      '',
    ]);
  }
  for (const r of result.floor) {
    rows.push([`(c) floor: ${r.variant}`, r.format, r.records.toLocaleString('en-US'), r.seconds.toFixed(2), rate(r.recordsPerSecond), rate(r.records / r.cpuSeconds), rate(r.recordsPerMainThreadCpuSecond), '', '', '', '']);
  }
  for (const r of result.join) {
    const m = r.memory;
    rows.push([
      '(b) embedded join',
      r.format,
      r.records.toLocaleString('en-US'),
      r.seconds.toFixed(2),
      rate(r.recordsPerSecond),
      rate(r.recordsPerCpuSecond),
      rate(r.recordsPerMainThreadCpuSecond),
      r.latencyMs.p50.toFixed(1),
      r.latencyMs.p99.toFixed(1),
      `${mib(m.peakRssBytes)} (+${mib(m.peakRssBytes - m.baselineRssBytes)})`,
      mib(m.peakHeapUsedBytes),
    ]);
    rows.push(['    of which processing', r.format, '', (r.processSeconds + r.endOfInputSeconds).toFixed(2), rate(r.processRecordsPerSecond), '', '', '', '', '', '']);
  }
  const table = formatTable(['phase', 'format', 'input records', 'seconds', 'records/s', 'records/CPU-s', 'rec/main-thread CPU-s', 'p50 ms', 'p99 ms', 'peak RSS (+over baseline)', 'peak heap'], rows);
  const ratios = result.ratios.map(
    (r) =>
      `ratio (b)/(a) ${r.format}: ${r.joinOverLimit.toFixed(3)} wall clock, ${r.joinOverLimitCpu.toFixed(3)} per CPU-second, ` +
      `${r.joinOverLimitMainThread.toFixed(3)} per main-thread CPU-second ` +
      `(processing only, wall: ${r.processOnlyOverLimit.toFixed(3)}); target >= ${result.target}`,
  );
  const floorRatios = result.floorRatios.map(
    (r) => `ratio (c)/(a) ${r.format}, floor ${r.variant}: ${r.floorOverLimitMainThread.toFixed(3)} per main-thread CPU-second (no join logic at all)`,
  );
  const threads = result.join.map(
    (r) => `CPU seconds by thread, (b) ${r.format}: ${Object.entries(r.threadCpuSeconds).map(([group, sec]) => `${group} ${sec.toFixed(1)}`).join(', ')}`,
  );
  return [table, ...ratios, ...floorRatios, ...threads, `load average (1 min) at start/end: ${result.loadAverage.start.toFixed(1)} / ${result.loadAverage.end.toFixed(1)} on ${result.machine.nproc} CPUs`].join('\n');
}

function parseList<T extends string>(value: string, allowed: readonly T[], flag: string): T[] {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    if (!(allowed as readonly string[]).includes(item)) throw new UsageError(`${flag} accepts ${allowed.join(', ')}; got "${item}"`);
  }
  return items as T[];
}

function positiveInt(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value.replaceAll('_', ''));
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer, got "${value}"`);
  return n;
}

/** Parses the join benchmark's flags (also accepted by bench/run.ts). */
export function joinOptionsFromArgs(args: readonly string[]): Partial<JoinBenchOptions> {
  const { values } = parseArgs({
    args: [...args],
    strict: false,
    options: {
      predictions: { type: 'string' },
      chunk: { type: 'string' },
      formats: { type: 'string' },
      phases: { type: 'string' },
      'after-ms': { type: 'string' },
      'grace-ms': { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
      profile: { type: 'string' },
      'max-rss-mib': { type: 'string' },
      'no-write': { type: 'boolean' },
    },
  });
  const str = (k: string): string | undefined => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  const d = DEFAULT_JOIN_OPTIONS;
  return {
    predictions: positiveInt(str('predictions'), '--predictions', d.predictions),
    chunk: positiveInt(str('chunk'), '--chunk', d.chunk),
    formats: str('formats') === undefined ? d.formats : parseList(str('formats') as string, ['json', 'avro'] as const, '--formats'),
    phases: str('phases') === undefined ? d.phases : parseList(str('phases') as string, ['limit', 'join', 'floor'] as const, '--phases'),
    afterMs: positiveInt(str('after-ms'), '--after-ms', d.afterMs),
    graceMs: positiveInt(str('grace-ms'), '--grace-ms', d.graceMs),
    seed: positiveInt(str('seed'), '--seed', d.seed),
    maxRssBytes: str('max-rss-mib') === undefined ? d.maxRssBytes : positiveInt(str('max-rss-mib'), '--max-rss-mib', 0) * 1024 * 1024,
    profileDir: str('profile') ?? null,
    resultFile: values['no-write'] === true ? null : (str('out') ?? d.resultFile),
  };
}

if (isMainModule(import.meta.url)) {
  runJoinBench(joinOptionsFromArgs(process.argv.slice(2))).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
