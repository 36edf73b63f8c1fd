/**
 * Kafka join benchmark: the prediction ⋈ feedback join on a real broker, sampleloop's Kafka mode versus a
 * Kafka Streams application doing the same join (bench/kafka-streams/), each at-least-once and exactly-once.
 *
 * For every engine × guarantee: fresh topics (unique prefix per run), start the engine in its own process,
 * produce the load (bench/kafka-load.ts, in its own process), consume `samples` (read_committed for EOS)
 * until every expected sample arrived. Throughput = input records / (last sample arrival − first send);
 * latency of a sample = its arrival − the send time of the later of its two inputs.
 *
 * Needs a broker: `scripts/kafka/local.sh start broker`. Run:
 *   npm run build && node dist/bench/kafka-join.js [--predictions 200000] [--rate R] [--engines kafka-streams,sampleloop]
 *     [--guarantees alos,eos] [--bootstrap 127.0.0.1:19092]
 * (see docs/benchmarks.md, "Kafka join: sampleloop vs Kafka Streams").
 */
import { spawn, spawnSync, fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { KafkaJS } from '@confluentinc/kafka-javascript';
import { parseConfig, type SampleloopConfig } from '../config/config.js';
import { UsageError, errorMessage } from '../engine/errors.js';
import { startKafkaApp } from '../app/kafka.js';
import { createLogger } from '../engine/logger.js';
import { packageRoot } from '../config/paths.js';
import { decodeFramed } from '../schemas/codec.js';
import { schemaOf } from '../schemas/index.js';
import {
  DEFAULT_BOOTSTRAP,
  KafkaBenchError,
  LOAD_PARTITIONS,
  SENT_AT_HEADER,
  countRecords,
  deleteTopicsWithPrefix,
  ensureTopics,
  type LoadServerReply,
  type LoadServerRequest,
  type ProduceOptions,
  type ProduceResult,
} from './kafka-load.js';
import { formatTable, isMainModule, machineInfo, mib, rate, resultPath, writeResult, type MachineInfo } from './measure.js';
import type { ExpectedOutcome } from './traffic.js';

export type EngineName = 'kafka-streams' | 'sampleloop';
export type Guarantee = 'alos' | 'eos';
export const ENGINES: readonly EngineName[] = ['kafka-streams', 'sampleloop'];
export const GUARANTEES: readonly Guarantee[] = ['alos', 'eos'];
export const DEFAULT_REGISTRY_URL = 'http://127.0.0.1:18081/apis/ccompat/v7';
const PROCESSING_GUARANTEE = { alos: 'at_least_once', eos: 'exactly_once_v2' } as const;

export interface KafkaJoinOptions {
  bootstrap: string;
  /** Schema registry for sampleloop (scripts/kafka/local.sh start registry). */
  registryUrl: string;
  predictions: number;
  /** Input records per second offered by the producer; null for as fast as possible. */
  ratePerSecond: number | null;
  engines: EngineName[];
  guarantees: Guarantee[];
  commitIntervalMs: number;
  beforeMs: number;
  afterMs: number;
  graceMs: number;
  /** Kafka Streams num.stream.threads. */
  streamThreads: number;
  javaOptions: string[];
  seed: number;
  /** Give up when no new sample arrived for this long after the producer finished. */
  idleTimeoutMs: number;
  keepTopics: boolean;
  resultFile: string | null;
  out: (line: string) => void;
}

export const DEFAULT_KAFKA_JOIN_OPTIONS: KafkaJoinOptions = {
  bootstrap: DEFAULT_BOOTSTRAP,
  registryUrl: DEFAULT_REGISTRY_URL,
  predictions: 200_000,
  ratePerSecond: null,
  engines: [...ENGINES],
  guarantees: [...GUARANTEES],
  commitIntervalMs: 100,
  // docs/join-semantics.md defaults: no window closes during a run (see docs/benchmarks.md for shorter windows).
  beforeMs: 60_000,
  afterMs: 86_400_000,
  graceMs: 3_600_000,
  streamThreads: 1,
  javaOptions: ['-Xms256m', '-Xmx1g'],
  seed: 42,
  idleTimeoutMs: 60_000,
  keepTopics: false,
  resultFile: resultPath('kafka-join'),
  out: (line) => console.log(line),
};

export interface RunTopics {
  predictions: string;
  feedback: string;
  samples: string;
  unmatched: string;
  orphans: string;
  late: string;
  review: string;
  deadLetters: string;
}

/** What an engine needs to run one benchmark round. */
export interface EngineRunSpec {
  bootstrap: string;
  applicationId: string;
  topics: RunTopics;
  processingGuarantee: 'at_least_once' | 'exactly_once_v2';
  commitIntervalMs: number;
  join: { beforeMs: number; afterMs: number; graceMs: number };
  streamThreads: number;
  javaOptions: string[];
  /** Confluent-compatible schema registry (sampleloop's outputs are registered Avro). */
  registryUrl: string;
}

// ---------------------------------------------------------------------------------------------------
// sampleloop's Kafka mode (app/kafka.ts), run in a child process until close().
// ---------------------------------------------------------------------------------------------------
export interface SampleloopKafkaBenchOptions {
  bootstrap: string;
  processingGuarantee: 'at_least_once' | 'exactly_once_v2';
  commitIntervalMs: number;
  /** mode kafka (bootstrap, guarantee, commit interval, registry, state dir), the run's topics and application id, join windows, both categories' classes. */
  config: SampleloopConfig;
}

export interface RunningSampleloopKafka {
  close(): Promise<unknown>;
}

export type StartSampleloopKafka = (options: SampleloopKafkaBenchOptions) => Promise<RunningSampleloopKafka>;

function sampleloopOptions(spec: EngineRunSpec, dataDir: string): SampleloopKafkaBenchOptions {
  return {
    bootstrap: spec.bootstrap,
    processingGuarantee: spec.processingGuarantee,
    commitIntervalMs: spec.commitIntervalMs,
    config: parseConfig({
      applicationId: spec.applicationId,
      mode: 'kafka',
      dataDir,
      topics: spec.topics,
      join: spec.join,
      categories: { fraud: { classes: ['fraud', 'legit'] }, intent: { classes: ['billing', 'support', 'sales', 'cancel'] } },
      log: { level: 'warn' },
      kafka: {
        bootstrapServers: spec.bootstrap,
        processingGuarantee: spec.processingGuarantee === 'exactly_once_v2' ? 'exactly_once' : 'at_least_once',
        instanceId: 'bench-1',
        stateDir: join(dataDir, 'state'),
        partitions: LOAD_PARTITIONS,
        commitIntervalMs: spec.commitIntervalMs,
        schemaRegistry: { url: spec.registryUrl },
      },
    }),
  };
}

/** Starts sampleloop's Kafka app and resolves once it owns every partition. */
async function startViaKafkaApp(options: SampleloopKafkaBenchOptions): Promise<RunningSampleloopKafka> {
  const app = await startKafkaApp(options.config, { logger: createLogger({ level: options.config.log.level, name: 'sampleloop-bench' }) });
  const controller = new AbortController();
  const running = app.runtime.run(controller.signal);
  let failure: unknown = null;
  running.catch((err: unknown) => (failure = err));
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (app.runtime.taskCount() < LOAD_PARTITIONS) {
    if (failure !== null) throw failure;
    if (Date.now() > deadline) throw new KafkaBenchError(`sampleloop got ${app.runtime.taskCount()} of ${LOAD_PARTITIONS} tasks within ${READY_TIMEOUT_MS / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    async close() {
      controller.abort();
      try {
        await running;
      } finally {
        await app.close();
      }
    },
  };
}

/** How the benchmark starts sampleloop (a union so a run can still report an engine as unavailable). */
export function loadSampleloopKafka(): Promise<{ start: StartSampleloopKafka; via: string } | { unavailable: string }> {
  return Promise.resolve({ start: startViaKafkaApp, via: 'app/kafka startKafkaApp' });
}

// ---------------------------------------------------------------------------------------------------
// Engine processes
// ---------------------------------------------------------------------------------------------------

export interface EngineExit {
  exitCode: number | null;
  /** Counters the engine printed at shutdown, if any. */
  stats: Record<string, number> | null;
  stderrTail: string;
}

interface EngineProcess {
  readonly pid: number;
  readonly ready: Promise<void>;
  stop(): Promise<EngineExit>;
}

const KSTREAMS_PREFIX = 'sampleloop-kstreams';
const READY_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 60_000;

export function kafkaStreamsJar(): string {
  return join(packageRoot(), 'bench', 'kafka-streams', 'target', 'sampleloop-kafka-streams-join.jar');
}

/** Builds the Kafka Streams jar with Maven when it is missing. */
export function ensureKafkaStreamsJar(say: (line: string) => void): string {
  const jar = kafkaStreamsJar();
  if (existsSync(jar)) return jar;
  const pom = join(packageRoot(), 'bench', 'kafka-streams', 'pom.xml');
  say(`  building ${jar} (mvn -q -f ${pom} -DskipTests package)`);
  const built = spawnSync('mvn', ['-B', '-q', '-f', pom, '-DskipTests', 'package'], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (built.status !== 0 || !existsSync(jar)) {
    throw new KafkaBenchError(`could not build the Kafka Streams jar (mvn exit ${String(built.status)}${built.error ? `: ${built.error.message}` : ''}); run: mvn -q -f ${pom} package`);
  }
  return jar;
}

function tailKeeper(limit = 4000): { push(chunk: string): void; text(): string } {
  let text = '';
  return {
    push(chunk) {
      text = (text + chunk).slice(-limit);
    },
    text: () => text,
  };
}

function waitForExit(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

async function stopChild(child: ChildProcess, askToStop: () => void): Promise<number | null> {
  const exited = waitForExit(child);
  askToStop();
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  try {
    return await exited;
  } finally {
    clearTimeout(timer);
  }
}

function startKafkaStreams(spec: EngineRunSpec, jar: string): EngineProcess {
  const args = [
    ...spec.javaOptions,
    '-jar', jar,
    '--bootstrap', spec.bootstrap,
    '--application-id', spec.applicationId,
    '--guarantee', spec.processingGuarantee,
    '--commit-interval-ms', String(spec.commitIntervalMs),
    '--predictions-topic', spec.topics.predictions,
    '--feedback-topic', spec.topics.feedback,
    '--samples-topic', spec.topics.samples,
    '--before-ms', String(spec.join.beforeMs),
    '--after-ms', String(spec.join.afterMs),
    '--grace-ms', String(spec.join.graceMs),
    '--threads', String(spec.streamThreads),
  ];
  const child = spawn(process.env.SAMPLELOOP_JAVA ?? 'java', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr = tailKeeper();
  let stats: Record<string, number> | null = null;
  let lineBuffer = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new KafkaBenchError(`Kafka Streams did not reach RUNNING within ${READY_TIMEOUT_MS / 1000} s:\n${stderr.text()}`)), READY_TIMEOUT_MS);
    const settle = (err?: Error): void => {
      clearTimeout(timer);
      if (err) reject(err);
      else resolve();
    };
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      lineBuffer += chunk;
      let nl: number;
      while ((nl = lineBuffer.indexOf('\n')) >= 0) {
        const line = lineBuffer.slice(0, nl).trim();
        lineBuffer = lineBuffer.slice(nl + 1);
        if (line === `${KSTREAMS_PREFIX} state RUNNING`) settle();
        else if (line === `${KSTREAMS_PREFIX} state ERROR`) settle(new KafkaBenchError(`Kafka Streams failed:\n${stderr.text()}`));
        else if (line.startsWith(`${KSTREAMS_PREFIX} stats `)) stats = JSON.parse(line.slice(`${KSTREAMS_PREFIX} stats `.length)) as Record<string, number>;
      }
    });
    child.once('error', (err) => settle(new KafkaBenchError(`cannot start java: ${err.message}`, { cause: err })));
    child.once('exit', (code) => settle(new KafkaBenchError(`Kafka Streams exited (code ${String(code)}) before RUNNING:\n${stderr.text()}`)));
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
  return {
    pid: child.pid ?? -1,
    ready,
    async stop() {
      const exitCode = await stopChild(child, () => child.kill('SIGTERM'));
      return { exitCode, stats, stderrTail: stderr.text() };
    },
  };
}

type EngineChildRequest = { type: 'start'; spec: EngineRunSpec } | { type: 'stop' };
type EngineChildReply = { type: 'running' } | { type: 'failed'; message: string } | { type: 'stopped' };

function startSampleloopChild(spec: EngineRunSpec): EngineProcess {
  const child = fork(fileURLToPath(import.meta.url), ['--engine-child'], { stdio: ['ignore', 'inherit', 'pipe', 'ipc'], serialization: 'advanced' });
  const stderr = tailKeeper();
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new KafkaBenchError(`sampleloop did not start within ${READY_TIMEOUT_MS / 1000} s:\n${stderr.text()}`)), READY_TIMEOUT_MS);
    child.on('message', (reply: EngineChildReply) => {
      if (reply.type === 'running') {
        clearTimeout(timer);
        resolve();
      } else if (reply.type === 'failed') {
        clearTimeout(timer);
        reject(new KafkaBenchError(`sampleloop failed: ${reply.message}\n${stderr.text()}`));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new KafkaBenchError(`sampleloop exited (code ${String(code)}) before running:\n${stderr.text()}`));
    });
  });
  child.send({ type: 'start', spec } satisfies EngineChildRequest);
  return {
    pid: child.pid ?? -1,
    ready,
    async stop() {
      const exitCode = await stopChild(child, () => {
        if (child.connected) child.send({ type: 'stop' } satisfies EngineChildRequest);
        else child.kill('SIGTERM');
      });
      return { exitCode, stats: null, stderrTail: stderr.text() };
    },
  };
}

/** Body of the sampleloop engine child process (`--engine-child`). */
async function engineChild(): Promise<void> {
  const reply = (message: EngineChildReply): void => {
    process.send?.(message);
  };
  const hook = await loadSampleloopKafka();
  let running: RunningSampleloopKafka | null = null;
  let dataDir: string | null = null;
  process.on('message', (request: EngineChildRequest) => {
    if (request.type === 'start') {
      if ('unavailable' in hook) {
        reply({ type: 'failed', message: hook.unavailable });
        return;
      }
      dataDir = mkdtempSync(join(tmpdir(), 'sampleloop-kafka-bench-'));
      hook.start(sampleloopOptions(request.spec, dataDir)).then(
        (engine) => {
          running = engine;
          reply({ type: 'running' });
        },
        (err: unknown) => reply({ type: 'failed', message: errorMessage(err) }),
      );
    } else {
      const closing = running?.close() ?? Promise.resolve();
      closing
        .catch((err: unknown) => console.error(`sampleloop close failed: ${errorMessage(err)}`))
        .finally(() => {
          if (dataDir !== null) rmSync(dataDir, { recursive: true, force: true });
          reply({ type: 'stopped' });
          process.disconnect();
        });
    }
  });
}

/** CPU seconds (user + system) a process has used so far; null where /proc is not available. */
function processCpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of /proc/<pid>/stat (11 and 12 after the command name), in clock ticks.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

/** Peak resident set size of a live process (VmHWM). */
function processPeakRssBytes(pid: number): number | null {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------------
// Load process (bench/kafka-load.ts --serve)
// ---------------------------------------------------------------------------------------------------

interface LoadProcess {
  records: number;
  expected: ExpectedOutcome;
  requestIds: string[];
  generationSeconds: number;
  jsonBytes: number;
  produce(options: ProduceOptions): Promise<ProduceResult>;
  close(): Promise<void>;
}

async function startLoadProcess(predictions: number, seed: number): Promise<LoadProcess> {
  const script = fileURLToPath(new URL('./kafka-load.js', import.meta.url));
  const child = fork(script, ['--serve', '--predictions', String(predictions), '--seed', String(seed)], { serialization: 'advanced' });
  const replies: LoadServerReply[] = [];
  let waiter: (() => void) | null = null;
  let exited = false;
  child.on('message', (reply: LoadServerReply) => {
    replies.push(reply);
    waiter?.();
  });
  child.once('exit', () => {
    exited = true;
    waiter?.();
  });
  const next = async (): Promise<LoadServerReply> => {
    while (replies.length === 0) {
      if (exited) throw new KafkaBenchError('the load generator exited unexpectedly');
      await new Promise<void>((resolve) => (waiter = resolve));
      waiter = null;
    }
    return replies.shift() as LoadServerReply;
  };
  const first = await next();
  if (first.type !== 'ready') throw new KafkaBenchError(`load generator: ${first.type === 'failed' ? first.message : 'unexpected reply'}`);
  return {
    records: first.records,
    expected: first.expected,
    requestIds: first.requestIds,
    generationSeconds: first.generationSeconds,
    jsonBytes: first.jsonBytes,
    async produce(options) {
      child.send({ type: 'produce', options } satisfies LoadServerRequest);
      const reply = await next();
      if (reply.type === 'produced') return reply.result;
      throw new KafkaBenchError(`load generator: ${reply.type === 'failed' ? reply.message : 'unexpected reply'}`);
    },
    async close() {
      if (exited) return;
      const done = waitForExit(child);
      child.send({ type: 'exit' } satisfies LoadServerRequest);
      await done;
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Samples consumer
// ---------------------------------------------------------------------------------------------------

/** Arrival log of the samples topic plus a content check of every CHECK_EVERY-th sample. */
class SampleCollector {
  readonly keys: string[] = [];
  readonly arrivals: number[] = [];
  readonly headerSentAt: number[] = [];
  readonly distinct = new Set<string>();
  checked = 0;
  invalid = 0;
  firstInvalid: string | null = null;
  lastArrivalAt = 0;
  private progress: (() => void) | null = null;
  private readonly consumer: KafkaJS.Consumer;

  private static readonly CHECK_EVERY = 100;

  constructor(bootstrap: string, private readonly topic: string, groupId: string, readCommitted: boolean) {
    this.consumer = new KafkaJS.Kafka({}).consumer({
      'bootstrap.servers': bootstrap,
      'group.id': groupId,
      'auto.offset.reset': 'earliest',
      'enable.auto.commit': false,
      'isolation.level': readCommitted ? 'read_committed' : 'read_uncommitted',
      'fetch.wait.max.ms': 50,
      'js.consumer.max.batch.size': -1,
      log_level: 3,
    });
  }

  async start(): Promise<void> {
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [this.topic] });
    void this.consumer.run({
      eachBatch: async ({ batch }) => {
        const now = Date.now();
        for (const message of batch.messages) this.accept(message, now);
        this.lastArrivalAt = now;
        this.progress?.();
      },
    });
    const deadline = Date.now() + 60_000;
    while (this.consumer.assignment().length < LOAD_PARTITIONS) {
      if (Date.now() > deadline) throw new KafkaBenchError(`the samples consumer got no assignment of ${this.topic} within 60 s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  private accept(message: KafkaJS.KafkaMessage, arrivedAt: number): void {
    const key = message.key?.toString('utf8') ?? '';
    this.keys.push(key);
    this.arrivals.push(arrivedAt);
    const header = message.headers?.[SENT_AT_HEADER];
    const headerValue = Array.isArray(header) ? header[header.length - 1] : header;
    this.headerSentAt.push(headerValue === undefined ? Number.NaN : Number(headerValue.toString()));
    this.distinct.add(key);
    if (this.keys.length % SampleCollector.CHECK_EVERY === 1) this.check(key, message.value);
  }

  private check(key: string, value: Buffer | null): void {
    this.checked++;
    const problem = sampleProblem(key, value);
    if (problem !== null) {
      this.invalid++;
      this.firstInvalid ??= problem;
    }
  }

  /** Resolves when `expected` distinct samples arrived; rejects after `idleMs` without progress once `producerDone` is set. */
  async waitFor(expected: number, idleMs: number, producerDone: () => boolean): Promise<void> {
    let lastCount = this.distinct.size;
    let lastProgressAt = Date.now();
    while (this.distinct.size < expected) {
      await new Promise<void>((resolve) => {
        this.progress = resolve;
        setTimeout(resolve, 500);
      });
      this.progress = null;
      if (this.distinct.size !== lastCount || !producerDone()) {
        lastCount = this.distinct.size;
        lastProgressAt = Date.now();
      } else if (Date.now() - lastProgressAt > idleMs) {
        throw new KafkaBenchError(`only ${this.distinct.size} of ${expected} samples arrived; none for ${idleMs / 1000} s`);
      }
    }
  }

  async close(): Promise<void> {
    await this.consumer.disconnect();
  }
}

/** A sample record's value: JSON (Kafka Streams) or Confluent-framed Avro LabeledSample (sampleloop). */
export function decodeSample(value: Buffer): Record<string, unknown> {
  if (value[0] === 0x7b) return JSON.parse(value.toString('utf8')) as Record<string, unknown>;
  return decodeFramed(value, () => schemaOf('LabeledSample')).value as Record<string, unknown>;
}

/** Why a sample record is not a plausible LabeledSample (null when it is). */
export function sampleProblem(key: string, value: Buffer | null): string | null {
  if (value === null) return `${key}: null value`;
  let s: Record<string, unknown>;
  try {
    s = decodeSample(value);
  } catch (err) {
    return `${key}: undecodable (${errorMessage(err)})`;
  }
  const attributes = (s.attributes ?? {}) as Record<string, unknown>;
  if (s.requestId !== key) return `${key}: requestId ${String(s.requestId)} differs from the key`;
  if (s.labelSource !== 'CONFIRMED' && s.labelSource !== 'CORRECTED') return `${key}: labelSource ${String(s.labelSource)}`;
  if (s.labelSource === 'CONFIRMED' && s.label !== s.predictedLabel) return `${key}: CONFIRMED but label != predictedLabel`;
  if (s.labelSource === 'CORRECTED' && s.label === s.predictedLabel) return `${key}: CORRECTED but label == predictedLabel`;
  if (typeof s.features !== 'object' || s.features === null || Object.keys(s.features).length < 30) return `${key}: features missing`;
  if (s.feedbackTimestamp == null || s.requestTimestamp == null) return `${key}: timestamps missing`;
  if (s.revision !== 0) return `${key}: revision ${String(s.revision)}`;
  if (!/^tok_[A-Za-z0-9_-]{22}$/.test(String(attributes.name)) || !/^tok_/.test(String(attributes.idNumber))) return `${key}: name/idNumber not tokenized`;
  if (!/^\*+\d{4}$/.test(String(attributes.phone).replaceAll(' ', ''))) return `${key}: phone not masked`;
  return null;
}

// ---------------------------------------------------------------------------------------------------
// One run and the whole benchmark
// ---------------------------------------------------------------------------------------------------

export interface LatencySummary {
  p50: number;
  p99: number;
  max: number;
}

export interface RunResult {
  engine: EngineName;
  guarantee: Guarantee;
  status: 'ok' | 'unavailable' | 'failed';
  reason?: string;
  topicPrefix?: string;
  records?: number;
  /** First send to last sample arrival. */
  seconds?: number;
  recordsPerSecond?: number;
  /** sample arrival − send time of the later of its two inputs (first arrival per requestId), ms. */
  latencyMs?: LatencySummary;
  /** The same for samples whose later input was sent in the second half of the send period (after JIT warm-up). */
  secondHalfLatencyMs?: LatencySummary;
  /** The same from the `sent-at` header the sample carries (when the engine propagates headers). */
  headerLatencyMs?: LatencySummary | null;
  /** Share of samples whose `sent-at` header is the later input's send time. */
  headerIsLaterInput?: number;
  producer?: { seconds: number; recordsPerSecond: number; offeredRate: number | null };
  samples?: { expected: number; received: number; distinct: number; duplicates: number; checked: number; invalid: number; firstInvalid: string | null };
  /** Records on sampleloop's side-output topics (late, orphans, unmatched, review, dead-letters) after the run. */
  sideOutputs?: Record<string, number>;
  engineProcess?: { cpuSeconds: number | null; recordsPerCpuSecond: number | null; peakRssBytes: number | null; exitCode: number | null; stats: Record<string, number> | null };
}

export interface KafkaJoinResult {
  benchmark: 'kafka-join';
  at: string;
  machine: MachineInfo;
  loadAverage: { start: number; end: number };
  options: Omit<KafkaJoinOptions, 'out' | 'resultFile'>;
  traffic: { predictions: number; feedback: number; records: number; jsonBytes: number; generationSeconds: number; expected: ExpectedOutcome };
  runs: RunResult[];
  /** sampleloop / Kafka Streams per guarantee (throughput: higher is better; latency: lower is better). */
  ratios: Array<{ guarantee: Guarantee; throughput: number; p50: number; p99: number }>;
}

function summarize(values: Float64Array): LatencySummary {
  const sorted = Float64Array.from(values).sort();
  const at = (p: number): number => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] as number;
  return { p50: at(50), p99: at(99), max: sorted[sorted.length - 1] as number };
}

function runTopics(prefix: string): RunTopics {
  return {
    predictions: `${prefix}-predictions`,
    feedback: `${prefix}-feedback`,
    samples: `${prefix}-samples`,
    unmatched: `${prefix}-unmatched`,
    orphans: `${prefix}-orphans`,
    late: `${prefix}-late`,
    review: `${prefix}-review`,
    deadLetters: `${prefix}-dead-letters`,
  };
}

async function sideOutputCounts(bootstrap: string, topics: RunTopics): Promise<Record<string, number>> {
  const side = { late: topics.late, orphans: topics.orphans, unmatched: topics.unmatched, review: topics.review, deadLetters: topics.deadLetters };
  const counts = await countRecords(bootstrap, Object.values(side));
  const out: Record<string, number> = {};
  for (const [name, topic] of Object.entries(side)) if (counts[topic] !== undefined) out[name] = counts[topic];
  return out;
}

interface RunContext {
  options: KafkaJoinOptions;
  load: LoadProcess;
  /** requestId → index into ProduceResult.laterSentAt. */
  requestIndex: Map<string, number>;
  jar: string | null;
}

async function runOnce(ctx: RunContext, engine: EngineName, guarantee: Guarantee): Promise<RunResult> {
  const { options, load } = ctx;
  const prefix = `kj-${Date.now().toString(36)}-${engine === 'kafka-streams' ? 'ks' : 'sl'}-${guarantee}`;
  const topics = runTopics(prefix);
  const spec: EngineRunSpec = {
    bootstrap: options.bootstrap,
    applicationId: prefix,
    topics,
    processingGuarantee: PROCESSING_GUARANTEE[guarantee],
    commitIntervalMs: options.commitIntervalMs,
    join: { beforeMs: options.beforeMs, afterMs: options.afterMs, graceMs: options.graceMs },
    streamThreads: options.streamThreads,
    javaOptions: options.javaOptions,
    registryUrl: options.registryUrl,
  };
  const names = engine === 'kafka-streams' ? [topics.predictions, topics.feedback, topics.samples] : Object.values(topics);
  await ensureTopics(options.bootstrap, names.map((name) => ({ name, partitions: LOAD_PARTITIONS })));
  let engineProc: EngineProcess | null = null;
  const collector = new SampleCollector(options.bootstrap, topics.samples, `${prefix}-bench-reader`, guarantee === 'eos');
  try {
    engineProc = engine === 'kafka-streams' ? startKafkaStreams(spec, ctx.jar as string) : startSampleloopChild(spec);
    await engineProc.ready;
    await collector.start();
    const cpuBefore = processCpuSeconds(engineProc.pid);
    let producerDone = false;
    const producing = load
      .produce({ bootstrap: options.bootstrap, predictionsTopic: topics.predictions, feedbackTopic: topics.feedback, ratePerSecond: options.ratePerSecond })
      .finally(() => (producerDone = true));
    // Surface producer failures while waiting for samples.
    producing.catch(() => undefined);
    try {
      await Promise.race([collector.waitFor(load.expected.samples, options.idleTimeoutMs, () => producerDone), producing.then(() => new Promise<never>(() => undefined))]);
    } catch (err) {
      const side = await sideOutputCounts(options.bootstrap, topics).catch(() => ({}));
      throw new KafkaBenchError(`${errorMessage(err)}; side outputs: ${JSON.stringify(side)}`, { cause: err });
    }
    const completedAt = collector.lastArrivalAt;
    const produced = await producing;
    const cpuAfter = processCpuSeconds(engineProc.pid);
    const peakRssBytes = processPeakRssBytes(engineProc.pid);
    const exit = await engineProc.stop();
    engineProc = null;
    const sideOutputs = await sideOutputCounts(options.bootstrap, topics);

    const latencies: number[] = [];
    const secondHalf: number[] = [];
    const halfway = (produced.firstSendAt + produced.lastSendAt) / 2;
    const headerLatencies: number[] = [];
    let headerIsLater = 0;
    const seen = new Set<string>();
    for (let i = 0; i < collector.keys.length; i++) {
      const key = collector.keys[i] as string;
      if (seen.has(key)) continue;
      seen.add(key);
      const index = ctx.requestIndex.get(key);
      if (index === undefined) continue;
      const later = produced.laterSentAt[index] as number;
      const arrival = collector.arrivals[i] as number;
      const header = collector.headerSentAt[i] as number;
      latencies.push(arrival - later);
      if (later >= halfway) secondHalf.push(arrival - later);
      if (!Number.isNaN(header)) headerLatencies.push(arrival - header);
      if (header === later) headerIsLater++;
    }
    const seconds = (completedAt - produced.firstSendAt) / 1000;
    const cpuSeconds = cpuBefore !== null && cpuAfter !== null ? cpuAfter - cpuBefore : null;
    const producerSeconds = (produced.allDeliveredAt - produced.firstSendAt) / 1000;
    return {
      engine,
      guarantee,
      status: 'ok',
      topicPrefix: prefix,
      records: produced.records,
      seconds,
      recordsPerSecond: produced.records / seconds,
      latencyMs: summarize(Float64Array.from(latencies)),
      secondHalfLatencyMs: summarize(Float64Array.from(secondHalf)),
      headerLatencyMs: headerLatencies.length > 0 ? summarize(Float64Array.from(headerLatencies)) : null,
      headerIsLaterInput: latencies.length > 0 ? headerIsLater / latencies.length : 0,
      producer: { seconds: producerSeconds, recordsPerSecond: produced.records / producerSeconds, offeredRate: options.ratePerSecond },
      samples: {
        expected: load.expected.samples,
        received: collector.keys.length,
        distinct: collector.distinct.size,
        duplicates: collector.keys.length - collector.distinct.size,
        checked: collector.checked,
        invalid: collector.invalid,
        firstInvalid: collector.firstInvalid,
      },
      sideOutputs,
      engineProcess: {
        cpuSeconds,
        recordsPerCpuSecond: cpuSeconds !== null && cpuSeconds > 0 ? produced.records / cpuSeconds : null,
        peakRssBytes,
        exitCode: exit.exitCode,
        stats: exit.stats,
      },
    };
  } finally {
    if (engineProc !== null) {
      const exit = await engineProc.stop().catch(() => null);
      if (exit?.stderrTail) options.out(`  engine stderr (tail):\n${exit.stderrTail}`);
    }
    await collector.close().catch(() => undefined);
    if (!options.keepTopics) await deleteTopicsWithPrefix(options.bootstrap, prefix).catch((err: unknown) => options.out(`  could not delete topics ${prefix}*: ${errorMessage(err)}`));
  }
}

export async function runKafkaJoinBench(partial: Partial<KafkaJoinOptions> = {}): Promise<KafkaJoinResult> {
  const options: KafkaJoinOptions = { ...DEFAULT_KAFKA_JOIN_OPTIONS, ...partial };
  const say = options.out;
  const loadStart = loadavg()[0] as number;
  process.env.SAMPLELOOP_PRIVACY_KEY ??= randomBytes(32).toString('hex');
  const n = options.predictions;
  say(
    `kafka join benchmark: ${n.toLocaleString('en-US')} predictions + ${n.toLocaleString('en-US')} feedback on ${options.bootstrap}, ` +
      `${options.ratePerSecond === null ? 'as fast as possible' : `${rate(options.ratePerSecond)} records/s offered`}, ` +
      `engines ${options.engines.join(', ')}, guarantees ${options.guarantees.join(', ')}`,
  );
  const hook = options.engines.includes('sampleloop') ? await loadSampleloopKafka() : null;
  if (hook !== null && 'via' in hook) say(`  sampleloop via ${hook.via}`);
  const jar = options.engines.includes('kafka-streams') ? ensureKafkaStreamsJar(say) : null;
  const load = await startLoadProcess(n, options.seed);
  say(`  traffic generated in ${load.generationSeconds.toFixed(1)} s (not measured), ${mib(load.jsonBytes)} of JSON; ${load.expected.samples} samples expected`);
  const requestIndex = new Map<string, number>();
  load.requestIds.forEach((id, i) => requestIndex.set(id, i));
  const ctx: RunContext = { options, load, requestIndex, jar };
  const runs: RunResult[] = [];
  try {
    for (const guarantee of options.guarantees) {
      for (const engine of options.engines) {
        if (engine === 'sampleloop' && hook !== null && 'unavailable' in hook) {
          runs.push({ engine, guarantee, status: 'unavailable', reason: hook.unavailable });
          say(`  ${engine} ${guarantee}: ${hook.unavailable}`);
          continue;
        }
        try {
          const r = await runOnce(ctx, engine, guarantee);
          runs.push(r);
          say(
            `  ${engine} ${guarantee}: ${rate(r.recordsPerSecond ?? 0)} records/s (${(r.seconds ?? 0).toFixed(1)} s), ` +
              `p50 ${(r.latencyMs?.p50 ?? 0).toFixed(0)} ms, p99 ${(r.latencyMs?.p99 ?? 0).toFixed(0)} ms, ` +
              `${r.samples?.distinct} samples (${r.samples?.duplicates} duplicates, ${r.samples?.invalid}/${r.samples?.checked} checked invalid)` +
              (r.sideOutputs && Object.keys(r.sideOutputs).length > 0 ? `, side outputs ${JSON.stringify(r.sideOutputs)}` : ''),
          );
        } catch (err) {
          runs.push({ engine, guarantee, status: 'failed', reason: errorMessage(err) });
          say(`  ${engine} ${guarantee}: FAILED: ${errorMessage(err)}`);
        }
      }
    }
  } finally {
    await load.close();
  }
  const ratios = options.guarantees.flatMap((guarantee) => {
    const ks = runs.find((r) => r.engine === 'kafka-streams' && r.guarantee === guarantee && r.status === 'ok');
    const sl = runs.find((r) => r.engine === 'sampleloop' && r.guarantee === guarantee && r.status === 'ok');
    if (!ks?.latencyMs || !sl?.latencyMs || !ks.recordsPerSecond || !sl.recordsPerSecond) return [];
    return [{ guarantee, throughput: sl.recordsPerSecond / ks.recordsPerSecond, p50: sl.latencyMs.p50 / ks.latencyMs.p50, p99: sl.latencyMs.p99 / ks.latencyMs.p99 }];
  });
  const { out: _out, resultFile: _file, ...recorded } = options;
  const result: KafkaJoinResult = {
    benchmark: 'kafka-join',
    at: new Date().toISOString(),
    machine: machineInfo(),
    loadAverage: { start: loadStart, end: loadavg()[0] as number },
    options: recorded,
    traffic: { predictions: n, feedback: n, records: load.records, jsonBytes: load.jsonBytes, generationSeconds: load.generationSeconds, expected: load.expected },
    runs,
    ratios,
  };
  say('');
  say(kafkaJoinTable(result));
  if (options.resultFile !== null) {
    writeResult(options.resultFile, result);
    say(`\nresults written to ${options.resultFile}`);
  }
  return result;
}

export function kafkaJoinTable(result: KafkaJoinResult): string {
  const rows = result.runs.map((r) => {
    if (r.status !== 'ok') return [r.guarantee, r.engine, r.status === 'unavailable' ? 'not available yet' : 'FAILED', '', '', '', '', '', '', '', ''];
    const p = r.engineProcess;
    return [
      r.guarantee,
      r.engine,
      rate(r.recordsPerSecond ?? 0),
      (r.seconds ?? 0).toFixed(1),
      (r.latencyMs?.p50 ?? 0).toFixed(0),
      (r.latencyMs?.p99 ?? 0).toFixed(0),
      (r.latencyMs?.max ?? 0).toFixed(0),
      `${(r.secondHalfLatencyMs?.p50 ?? 0).toFixed(0)} / ${(r.secondHalfLatencyMs?.p99 ?? 0).toFixed(0)}`,
      p?.cpuSeconds == null ? '?' : p.cpuSeconds.toFixed(1),
      p?.peakRssBytes == null ? '?' : mib(p.peakRssBytes),
      `${r.samples?.distinct ?? 0}/${r.samples?.expected ?? 0}`,
    ];
  });
  for (const ratio of result.ratios) {
    rows.push([ratio.guarantee, 'sampleloop / kafka-streams', `${ratio.throughput.toFixed(2)}x`, '', `${ratio.p50.toFixed(2)}x`, `${ratio.p99.toFixed(2)}x`, '', '', '', '', '']);
  }
  const table = formatTable(['guarantee', 'engine', 'records/s', 'seconds', 'p50 ms', 'p99 ms', 'max ms', '2nd half p50/p99 ms', 'engine CPU-s', 'engine peak RSS', 'samples'], rows);
  return [
    table,
    'records/s = input records / (last sample arrival − first send); latency = sample arrival − send time of the later of its two inputs;',
    '2nd half = samples whose later input was sent in the second half of the send period (engines warmed up); ratios: sampleloop / Kafka Streams',
    `load average (1 min) at start/end: ${result.loadAverage.start.toFixed(1)} / ${result.loadAverage.end.toFixed(1)} on ${result.machine.nproc} CPUs`,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------------------------------

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

function nonNegativeInt(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value.replaceAll('_', ''));
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} must be an integer >= 0, got "${value}"`);
  return n;
}

export function parseKafkaJoinArgs(argv: string[]): Partial<KafkaJoinOptions> {
  const { values } = parseArgs({
    args: argv,
    options: {
      bootstrap: { type: 'string' },
      registry: { type: 'string' },
      predictions: { type: 'string' },
      rate: { type: 'string' },
      engines: { type: 'string' },
      guarantees: { type: 'string' },
      'commit-interval-ms': { type: 'string' },
      'before-ms': { type: 'string' },
      'after-ms': { type: 'string' },
      'grace-ms': { type: 'string' },
      'stream-threads': { type: 'string' },
      'java-opts': { type: 'string' },
      seed: { type: 'string' },
      'idle-timeout-ms': { type: 'string' },
      'keep-topics': { type: 'boolean' },
      'result-file': { type: 'string' },
      'no-result-file': { type: 'boolean' },
    },
  });
  const d = DEFAULT_KAFKA_JOIN_OPTIONS;
  const options: Partial<KafkaJoinOptions> = {
    predictions: positiveInt(values.predictions, '--predictions', d.predictions),
    ratePerSecond: values.rate === undefined ? null : positiveInt(values.rate, '--rate', 1),
    commitIntervalMs: positiveInt(values['commit-interval-ms'], '--commit-interval-ms', d.commitIntervalMs),
    beforeMs: nonNegativeInt(values['before-ms'], '--before-ms', d.beforeMs),
    afterMs: nonNegativeInt(values['after-ms'], '--after-ms', d.afterMs),
    graceMs: nonNegativeInt(values['grace-ms'], '--grace-ms', d.graceMs),
    streamThreads: positiveInt(values['stream-threads'], '--stream-threads', d.streamThreads),
    seed: nonNegativeInt(values.seed, '--seed', d.seed),
    idleTimeoutMs: positiveInt(values['idle-timeout-ms'], '--idle-timeout-ms', d.idleTimeoutMs),
    keepTopics: values['keep-topics'] ?? false,
  };
  if (values.bootstrap !== undefined) options.bootstrap = values.bootstrap;
  if (values.registry !== undefined) options.registryUrl = values.registry;
  if (values.engines !== undefined) options.engines = parseList(values.engines, ENGINES, '--engines');
  if (values.guarantees !== undefined) options.guarantees = parseList(values.guarantees, GUARANTEES, '--guarantees');
  if (values['java-opts'] !== undefined) options.javaOptions = values['java-opts'].split(/\s+/).filter(Boolean);
  if (values['result-file'] !== undefined) options.resultFile = values['result-file'];
  if (values['no-result-file']) options.resultFile = null;
  return options;
}

if (isMainModule(import.meta.url)) {
  const run = process.argv.includes('--engine-child') ? engineChild() : runKafkaJoinBench(parseKafkaJoinArgs(process.argv.slice(2))).then(() => undefined);
  run.catch((err: unknown) => {
    console.error(`kafka-join: ${errorMessage(err)}`);
    process.exitCode = 1;
  });
}
