/**
 * Shared pieces of the Kafka-mode integration tests (test/kafka/*.test.ts).
 *
 * Determinism: the join's results depend on the order in which each task sees its records, and a
 * Kafka consumer interleaves the predictions and feedback partitions of a task arbitrarily. The
 * tests therefore feed the traffic in *steps*: each step holds records of one input topic only, and
 * the next step is produced only once the application group has committed everything before it
 * (`InputDriver`). Every task then processes exactly the per-partition sequence of
 * `canonicalOrder(steps)`; the embedded engine, fed the same steps the same way (`runEmbedded`), gives
 * the expected result. `join.idleAdvance` is off in both modes, so wall-clock time cannot move stream time.
 *
 * Test traffic is moved to the recent past (see `testTraffic`), topics/groups/subjects are unique per
 * run (`createTestApp`), and instances run in process (`startInProcess`) or as separate processes of
 * the compiled engine (`KafkaWorker`, test/fixtures/kafka-worker.mjs: `npm run build` first).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { pino } from 'pino';
import { inject } from 'vitest';
import { parseConfig, type ConfigInput } from '../../config/config.js';
import { startKafkaApp, type KafkaApp } from '../../app/kafka.js';
import { EngineMetrics } from '../../engine/metrics.js';
import { call, KafkaConsumer, Producer, type KafkaConsumerType, type Message, type ProducerType } from '../../engine/kafka/client.js';
import { partitionForKey } from '../../engine/partitioner.js';
import { HARNESS_PRIVACY_KEY, startHarness } from '../helpers/engine-harness.js';
import { BUILD_DIRS } from '../helpers/dist.js';
import type { RefInput } from '../reference/join-model.js';
import { DEFAULT_TRAFFIC_CATEGORIES, generateTraffic, TRAFFIC_BASE_TIME } from '../reference/traffic.js';
import type { ProvidedKafka } from './global-setup.js';

export type KafkaEndpoints = ProvidedKafka;

/** The shared broker + registry of the global setup, or null when Kafka cannot run here (tests skip). */
export function kafkaEndpoints(): KafkaEndpoints | null {
  let provided: ProvidedKafka | null | undefined;
  try {
    provided = inject('kafka');
  } catch {
    provided = undefined;
  }
  if (provided) return provided;
  const bootstrap = process.env.SAMPLELOOP_TEST_BOOTSTRAP;
  const registryUrl = process.env.SAMPLELOOP_TEST_REGISTRY;
  return bootstrap && registryUrl ? { bootstrap, registryUrl } : null;
}

/** A name no other test run uses: topics, group ids and subjects derive from it. */
export function uniqueRunName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Small enough that late, outside-window, no-prediction and closing paths all fire during a run. */
export const TEST_WINDOW = { beforeMs: 30 * SECOND, afterMs: 2 * HOUR, graceMs: 20 * MINUTE } as const;

export const TEST_JOIN = { ...TEST_WINDOW, duplicates: 'latest', onTimeout: 'unmatched', idleAdvance: false } as const;

/** Configured classes for two categories; the other two fall back to the keys of the scores. */
export const TEST_CATEGORIES: Record<string, { classes: string[] }> = {
  fraud: { classes: ['fraud', 'legit'] },
  intent: { classes: ['billing', 'support', 'sales', 'cancel'] },
};

/**
 * Seeded traffic rich in corrections, duplicates, late and out-of-window records, moved to start
 * two days ago. With the generator's fixed 2023 times the broker would treat every record as older
 * than its 7-day retention: it rolls a segment on each append (so the compacted samples topic gets
 * cleaned while the test reads it) and deletes old segments of the other topics. Moving every
 * timestamp by the same amount leaves the join's decisions unchanged.
 */
export function testTraffic(seed: number, requests: number): RefInput[] {
  const shift = Math.floor((Date.now() - 2 * DAY - TRAFFIC_BASE_TIME) / HOUR) * HOUR;
  return generateTraffic({
    seed,
    requests,
    joinWindow: TEST_WINDOW,
    feedbackDelayMs: { min: 100, max: 3 * HOUR },
    lateRate: 0.03,
    outsideWindowRate: 0.03,
    duplicatePredictionRate: 0.02,
    duplicateFeedbackRate: 0.1,
    correctionRate: 0.08,
    feedbackBeforeRate: 0.05,
    correctOnlyRate: 0.25,
    outOfOrderMs: 2 * MINUTE,
    categories: [...DEFAULT_TRAFFIC_CATEGORIES],
  }).map((input) => (input.kind === 'prediction' ? { kind: 'prediction', value: { ...input.value, timestamp: input.value.timestamp + shift } } : { kind: 'feedback', value: { ...input.value, timestamp: input.value.timestamp + shift } }));
}

export type InputTopic = 'predictions' | 'feedback';

/** Records of one input topic, produced together. */
export interface Step {
  topic: InputTopic;
  inputs: RefInput[];
}

/**
 * Cuts the arrival order into chunks of `chunk` records; each chunk becomes a predictions step then a
 * feedback step (empty steps dropped).
 */
export function canonicalSteps(inputs: readonly RefInput[], chunk: number): Step[] {
  const steps: Step[] = [];
  for (let i = 0; i < inputs.length; i += chunk) {
    const slice = inputs.slice(i, i + chunk);
    const predictions = slice.filter((r) => r.kind === 'prediction');
    const feedback = slice.filter((r) => r.kind === 'feedback');
    if (predictions.length > 0) steps.push({ topic: 'predictions', inputs: predictions });
    if (feedback.length > 0) steps.push({ topic: 'feedback', inputs: feedback });
  }
  return steps;
}

export function canonicalOrder(steps: readonly Step[]): RefInput[] {
  return steps.flatMap((s) => s.inputs);
}

/** The engine's input record for a reference input (the prediction's request time is its own time). */
export function toEngineInput(input: RefInput): Record<string, unknown> {
  if (input.kind === 'feedback') return { ...input.value };
  return { ...input.value, requestTimestamp: input.value.timestamp };
}

export function jsonBytes(input: RefInput): Buffer {
  return Buffer.from(JSON.stringify(toEngineInput(input)), 'utf8');
}

/** A sample as compared between modes: every field the engine writes. */
export interface ComparableSample {
  requestId: string;
  category: string;
  label: string;
  labelSource: string;
  revision: number;
  predictedLabel: string;
  modelVersion: string;
  requestTimestamp: number;
  feedbackTimestamp: number | null;
  features: Record<string, number>;
  attributes: Record<string, string>;
  origin: string;
}

export interface KeyedSample {
  key: string | null;
  sample: ComparableSample;
}

export function comparable(value: unknown): ComparableSample {
  const s = value as ComparableSample;
  return {
    requestId: s.requestId,
    category: s.category,
    label: s.label,
    labelSource: s.labelSource,
    revision: s.revision,
    predictedLabel: s.predictedLabel,
    modelVersion: s.modelVersion,
    requestTimestamp: Number(s.requestTimestamp),
    feedbackTimestamp: s.feedbackTimestamp === null ? null : Number(s.feedbackTimestamp),
    features: { ...s.features },
    attributes: { ...s.attributes },
    origin: s.origin,
  };
}

/** Output topics compared between modes besides samples (all of them keyed by request ID). */
export const OTHER_OUTPUTS = ['unmatched', 'orphans', 'late', 'review', 'deadLetters'] as const;
export type OtherOutput = (typeof OTHER_OUTPUTS)[number];

/** Per request ID, the records of one output topic in order: canonical JSON of the value (dead letters: their reason code). */
export type OutputHistory = Map<string, string[]>;

export interface RunOutputs {
  samples: KeyedSample[];
  others: Record<OtherOutput, OutputHistory>;
}

function pushHistory(history: OutputHistory, key: string | null, entry: string): void {
  const k = key ?? '';
  const list = history.get(k) ?? [];
  list.push(entry);
  history.set(k, list);
}

/** JSON with object keys sorted, so values decoded by different Avro libraries compare equal. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : typeof v === 'bigint'
        ? Number(v)
        : v,
  );
}

/**
 * Outputs of the embedded engine fed the same steps (the expected result): each step is appended and
 * processed before the next, so every partition sees the records of `canonicalOrder(steps)` in order.
 */
export async function runEmbedded(steps: readonly Step[], partitions: number): Promise<RunOutputs> {
  const harness = await startHarness({ config: { join: TEST_JOIN, categories: TEST_CATEGORIES, embedded: { partitions } } });
  try {
    const { log, runtime } = harness.app;
    for (const step of steps) {
      const topic = harness.config.topics[step.topic];
      log.append(step.inputs.map((input) => ({ topic, key: Buffer.from(input.value.requestId, 'utf8'), value: jsonBytes(input), timestamp: input.value.timestamp, headers: {} })));
      runtime.runUntilIdle();
    }
    const samples = (await harness.records(harness.config.topics.samples)).map((r) => ({ key: r.key, sample: comparable(r.value) }));
    const others = {} as Record<OtherOutput, OutputHistory>;
    for (const kind of OTHER_OUTPUTS) {
      const history: OutputHistory = new Map();
      for (const r of await harness.records(harness.config.topics[kind])) {
        pushHistory(history, r.key, kind === 'deadLetters' ? String(r.headers['sampleloop.dlq.reason.code']) : canonicalJson(r.value));
      }
      others[kind] = history;
    }
    return { samples, others };
  } finally {
    await harness.close();
  }
}

/** Every output topic of a Kafka-mode run, read `read_committed` and decoded through the registry. */
export async function readKafkaOutputs(endpoints: KafkaEndpoints, topics: TestApp['topics'], partitions: number): Promise<RunOutputs> {
  const samples = await decodeSamples(endpoints.registryUrl, await readTopic(endpoints.bootstrap, topics.samples, partitions, { readCommitted: true }));
  const registry = new SchemaRegistry({ host: endpoints.registryUrl });
  const others = {} as Record<OtherOutput, OutputHistory>;
  for (const kind of OTHER_OUTPUTS) {
    const history: OutputHistory = new Map();
    const messages = (await readTopic(endpoints.bootstrap, topics[kind], partitions, { readCommitted: true })).sort((a, b) => a.partition - b.partition || a.offset - b.offset);
    for (const m of messages) {
      const key = m.key ? m.key.toString('utf8') : null;
      if (kind === 'deadLetters') {
        const header = ((m.headers ?? []) as Array<Record<string, Buffer | string>>).find((h) => 'sampleloop.dlq.reason.code' in h);
        pushHistory(history, key, String(header?.['sampleloop.dlq.reason.code'] ?? ''));
      } else {
        pushHistory(history, key, canonicalJson(await registry.decode(m.value as Buffer)));
      }
    }
    others[kind] = history;
  }
  return { samples, others };
}

/** `differences` for every non-sample output topic; '' when all are equal. */
export function otherOutputDifferences(actual: RunOutputs, expected: RunOutputs): string {
  return OTHER_OUTPUTS.map((kind) => {
    const d = differences(actual.others[kind], expected.others[kind], 2);
    return d === '' ? '' : `${kind}: ${d}`;
  })
    .filter((d) => d !== '')
    .join('\n');
}

/** Last sample per key, in log order (what the compacted topic converges to). */
export function finalByKey(samples: readonly KeyedSample[]): Map<string, ComparableSample> {
  const out = new Map<string, ComparableSample>();
  for (const s of samples) out.set(s.sample.requestId, s.sample);
  return out;
}

/** Every sample record per request ID, in order (per-key order survives partitioning). */
export function historyByKey(samples: readonly KeyedSample[]): Map<string, ComparableSample[]> {
  const out = new Map<string, ComparableSample[]>();
  for (const s of samples) {
    const list = out.get(s.sample.requestId) ?? [];
    list.push(s.sample);
    out.set(s.sample.requestId, list);
  }
  return out;
}

/** Per-run topic names, application id, temp dirs and the privacy key file of one application. */
export interface TestApp {
  run: string;
  topics: Record<'requests' | 'predictions' | 'feedback' | 'samples' | 'unmatched' | 'orphans' | 'late' | 'review' | 'deadLetters' | 'models' | 'retrainTriggers' | 'trainerDecisions', string>;
  dir: string;
  keyFile: string;
  /** Local state directory of an instance. */
  stateDir(instanceId: string): string;
  /** Engine config for one instance (its own state dir per instance id). */
  config(options: { instanceId: string; guarantee?: 'at_least_once' | 'exactly_once'; stateDir?: string; commitIntervalMs?: number; librdkafka?: Record<string, string | number | boolean> }): ConfigInput;
  cleanup(): void;
}

export function createTestApp(endpoints: KafkaEndpoints, prefix: string, partitions: number): TestApp {
  const run = uniqueRunName(prefix);
  const dir = mkdtempSync(join(tmpdir(), `sampleloop-${prefix}-`));
  const keyFile = join(dir, 'privacy.key');
  writeFileSync(keyFile, `${HARNESS_PRIVACY_KEY.toString('hex')}\n`, { mode: 0o600 });
  const names = ['requests', 'predictions', 'feedback', 'samples', 'unmatched', 'orphans', 'late', 'review', 'deadLetters', 'models', 'retrainTriggers', 'trainerDecisions'] as const;
  const topics = Object.fromEntries(names.map((n) => [n, `${run}.${n}`])) as TestApp['topics'];
  return {
    run,
    topics,
    dir,
    keyFile,
    stateDir: (instanceId) => join(dir, 'state', instanceId),
    config: ({ instanceId, guarantee = 'at_least_once', stateDir, commitIntervalMs = 100, librdkafka = {} }) => ({
      applicationId: run,
      mode: 'kafka',
      dataDir: join(dir, 'data'),
      topics,
      join: TEST_JOIN,
      categories: TEST_CATEGORIES,
      privacy: { keyEnv: 'SAMPLELOOP_TEST_KAFKA_UNUSED_KEY', keyFile },
      log: { level: 'info' },
      http: { port: 0 },
      kafka: {
        bootstrapServers: endpoints.bootstrap,
        processingGuarantee: guarantee,
        instanceId,
        stateDir: stateDir ?? join(dir, 'state', instanceId),
        replicationFactor: 1,
        partitions,
        commitIntervalMs,
        pollRecords: 500,
        // A crashed member must leave the group quickly (the broker's minimum session timeout).
        librdkafka: { 'session.timeout.ms': 6000, 'heartbeat.interval.ms': 1000, ...librdkafka },
        schemaRegistry: { url: endpoints.registryUrl },
      },
    }),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

// ---------------------------------------------------------------- Kafka clients

function quietSettings(bootstrap: string): Record<string, string | number | boolean> {
  return { 'bootstrap.servers': bootstrap, 'log_level': 3 };
}

export async function connectProducer(bootstrap: string): Promise<ProducerType> {
  const producer = new Producer({ ...quietSettings(bootstrap), 'enable.idempotence': true, acks: 'all', 'linger.ms': 5, dr_cb: true } as ConstructorParameters<typeof Producer>[0]);
  await call('connecting the test producer', (cb) => producer.connect({}, cb as never));
  producer.setPollInterval(20);
  return producer;
}

export async function connectConsumer(bootstrap: string, groupId: string, readCommitted: boolean): Promise<KafkaConsumerType> {
  const consumer = new KafkaConsumer(
    { ...quietSettings(bootstrap), 'group.id': groupId, 'enable.auto.commit': false, 'isolation.level': readCommitted ? 'read_committed' : 'read_uncommitted' } as ConstructorParameters<typeof KafkaConsumer>[0],
    { 'auto.offset.reset': 'earliest' },
  );
  await call('connecting the test consumer', (cb) => consumer.connect({}, cb as never));
  return consumer;
}

export function disconnect(client: { disconnect(cb: () => void): unknown }): Promise<void> {
  return new Promise((resolve) => client.disconnect(() => resolve()));
}

export interface RawRecord {
  key: string | null;
  value: Buffer;
  timestamp: number;
}

/** Produces records with the engine's partitioner (murmur2, as Java clients do) and waits for delivery. */
export async function produceKeyed(producer: ProducerType, topic: string, partitions: number, records: readonly RawRecord[]): Promise<void> {
  let failure: Error | undefined;
  const onReport = (err: unknown): void => {
    if (err && !failure) failure = new Error(`delivery to ${topic} failed: ${String((err as Error).message ?? err)}`);
  };
  producer.on('delivery-report', onReport);
  try {
    for (const r of records) {
      const key = r.key === null ? null : Buffer.from(r.key, 'utf8');
      const partition = key === null ? null : partitionForKey(key, partitions);
      for (;;) {
        try {
          producer.produce(topic, partition, r.value, key, r.timestamp);
          break;
        } catch (err) {
          if ((err as { code?: number }).code !== -184) throw err; // -184: local queue full
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      }
    }
    await call('flushing the test producer', (cb) => producer.flush(30_000, cb));
    // Delivery reports are polled every 20 ms; give the last ones a moment to arrive.
    await new Promise((resolve) => setTimeout(resolve, 40));
  } finally {
    producer.removeListener('delivery-report', onReport);
  }
  if (failure) throw failure;
}

/** Retries what fails while a broker restarts or a topic is new (not leader, unknown partition, transport...). */
async function retryTransient<T>(what: string, fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      const code = (err as { kafkaCode?: number }).kafkaCode;
      const transient = code !== undefined && [-195, -190, -187, -185, 3, 5, 6, 7, 14, 15, 16].includes(code);
      if (!transient || Date.now() > deadline) throw new Error(`${what}: ${String((err as Error).message ?? err)}`, { cause: err });
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

export async function highWatermarks(consumer: KafkaConsumerType, topic: string, partitions: number): Promise<number[]> {
  const out: number[] = [];
  for (let p = 0; p < partitions; p++) {
    const w = await retryTransient(`watermarks of ${topic}/${p}`, () => call<{ highOffset: number }>('reading watermarks', (cb) => consumer.queryWatermarkOffsets(topic, p, 10_000, cb)));
    out.push(w.highOffset);
  }
  return out;
}

/** Committed offsets of `consumer`'s group (-1001 when none) per partition. */
export async function committedOffsets(consumer: KafkaConsumerType, topic: string, partitions: number): Promise<number[]> {
  const toppars = Array.from({ length: partitions }, (_, partition) => ({ topic, partition }));
  const committed = await retryTransient(`committed offsets of ${topic}`, () =>
    call<Array<{ partition: number; offset?: number }>>('reading committed offsets', (cb) => consumer.committed(toppars, 10_000, cb)),
  );
  const out = new Array<number>(partitions).fill(-1001);
  // A partition without a committed offset comes back without `offset`.
  for (const c of committed) out[c.partition] = typeof c.offset === 'number' && c.offset >= 0 ? c.offset : -1001;
  return out;
}

/** Reads every record of `topic` from the beginning to its current end (`read_committed` or not). */
export async function readTopic(bootstrap: string, topic: string, partitions: number, options: { readCommitted: boolean; timeoutMs?: number }): Promise<Message[]> {
  const consumer = await connectConsumer(bootstrap, uniqueRunName('reader'), options.readCommitted);
  try {
    const ends = await highWatermarks(consumer, topic, partitions);
    const pending = new Set(ends.map((end, partition) => (end > 0 ? partition : -1)).filter((p) => p >= 0));
    if (pending.size === 0) return [];
    consumer.assign([...pending].map((partition) => ({ topic, partition, offset: 0 })));
    consumer.setDefaultConsumeTimeout(200);
    const out: Message[] = [];
    const deadline = Date.now() + (options.timeoutMs ?? 60_000);
    while (pending.size > 0) {
      if (Date.now() > deadline) throw new Error(`reading ${topic}: partitions ${[...pending].join(',')} did not reach their end offsets ${ends.join(',')} in time`);
      const batch = await call<Message[]>('reading', (cb) => consumer.consume(1000, cb));
      for (const m of batch) {
        out.push(m);
        if (m.offset + 1 >= (ends[m.partition] as number)) pending.delete(m.partition);
      }
      // Transaction markers and aborted records occupy offsets without being delivered.
      for (const pos of consumer.position([...pending].map((partition) => ({ topic, partition })))) {
        if (typeof pos.offset === 'number' && pos.offset >= (ends[pos.partition] as number)) pending.delete(pos.partition);
      }
    }
    return out;
  } finally {
    await disconnect(consumer);
  }
}

/** Decodes Confluent-framed Avro with a plain registry client, as any other consumer would. */
export async function decodeSamples(registryUrl: string, messages: readonly Message[]): Promise<KeyedSample[]> {
  const registry = new SchemaRegistry({ host: registryUrl });
  const out: KeyedSample[] = [];
  const ordered = [...messages].sort((a, b) => a.partition - b.partition || a.offset - b.offset);
  for (const m of ordered) {
    if (!m.value) throw new Error(`sample at ${m.partition}/${m.offset} has no value`);
    out.push({ key: m.key ? m.key.toString('utf8') : null, sample: comparable(await registry.decode(m.value)) });
  }
  return out;
}

// ---------------------------------------------------------------- pacing

export interface DriverOptions {
  bootstrap: string;
  /** The application's consumer group (= applicationId). */
  group: string;
  topics: Record<InputTopic, string>;
  partitions: number;
  /** Value bytes of one input (JSON by default). */
  encode?: (input: RefInput) => Buffer | Promise<Buffer>;
  /** How long one step may take to be committed by the group. */
  stepTimeoutMs?: number;
}

/**
 * Produces steps one at a time: a step goes out only when the group has committed every input
 * record before it, so processing follows `canonicalOrder` per partition whatever the consumers do.
 */
export class InputDriver {
  private constructor(
    private readonly options: DriverOptions,
    private readonly producer: ProducerType,
    private readonly monitor: KafkaConsumerType,
  ) {}

  static async connect(options: DriverOptions): Promise<InputDriver> {
    const producer = await connectProducer(options.bootstrap);
    // Only reads the group's committed offsets: never subscribes, so it never joins the group.
    const monitor = await connectConsumer(options.bootstrap, options.group, true);
    return new InputDriver(options, producer, monitor);
  }

  async produce(step: Step): Promise<void> {
    const encode = this.options.encode ?? jsonBytes;
    const records: RawRecord[] = [];
    for (const input of step.inputs) records.push({ key: input.value.requestId, value: await encode(input), timestamp: input.value.timestamp });
    await produceKeyed(this.producer, this.options.topics[step.topic], this.options.partitions, records);
  }

  /** Resolves when the group's committed offsets reach the end of every input partition. */
  async waitCommitted(timeoutMs = this.options.stepTimeoutMs ?? 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const topics = [this.options.topics.predictions, this.options.topics.feedback];
    const ends = new Map<string, number[]>();
    for (const t of topics) ends.set(t, await highWatermarks(this.monitor, t, this.options.partitions));
    for (;;) {
      let behind = 0;
      for (const t of topics) {
        const committed = await committedOffsets(this.monitor, t, this.options.partitions);
        (ends.get(t) as number[]).forEach((end, p) => {
          if (end > 0 && (committed[p] as number) < end) behind += end - Math.max(0, committed[p] as number);
        });
      }
      if (behind === 0) return;
      if (Date.now() > deadline) throw new Error(`group ${this.options.group} still has ${behind} input records uncommitted after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Produces each step and waits until it is committed; `between(i)` runs after step i is committed. */
  async drive(steps: readonly Step[], between?: (index: number) => Promise<void> | void): Promise<void> {
    for (let i = 0; i < steps.length; i++) {
      await this.produce(steps[i] as Step);
      await this.waitCommitted();
      await between?.(i);
    }
  }

  async close(): Promise<void> {
    await disconnect(this.producer);
    await disconnect(this.monitor);
  }
}

// ---------------------------------------------------------------- worker processes

export interface WorkerLine {
  event?: string;
  msg?: string;
  level?: number;
  partitions?: Array<{ topic: string; partition: number }>;
  error?: string;
  [field: string]: unknown;
}

const WORKER_SCRIPT = fileURLToPath(new URL('../fixtures/kafka-worker.mjs', import.meta.url));
const REPO = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Workers run the compiled engine: a source file newer than its dist/ counterpart means the test
 * would exercise old code. Returns the first stale source ('' when dist/ is current).
 */
export function staleDistSource(dirs: readonly string[] = BUILD_DIRS): string {
  for (const dir of dirs) {
    for (const entry of readdirSync(join(REPO, dir), { recursive: true, encoding: 'utf8' })) {
      if (!entry.endsWith('.ts') || entry.endsWith('.d.ts') || entry.endsWith('.test.ts')) continue; // tests are not built
      const source = join(REPO, dir, entry);
      const compiled = join(REPO, 'dist', dir, entry.replace(/\.ts$/, '.js'));
      if (!existsSync(compiled) || statSync(compiled).mtimeMs < statSync(source).mtimeMs) return join(dir, entry);
    }
  }
  return '';
}

/** One application instance in its own process (test/fixtures/kafka-worker.mjs). */
export class KafkaWorker {
  readonly lines: WorkerLine[] = [];
  private stderr = '';
  private readonly exited: Promise<number | null>;
  private readonly waiters = new Set<() => void>();
  private exitCode: number | null | undefined;

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    const rl = createInterface({ input: child.stdout as NonNullable<ChildProcess['stdout']> });
    rl.on('line', (line) => {
      try {
        this.lines.push(JSON.parse(line) as WorkerLine);
      } catch {
        this.lines.push({ msg: line });
      }
      for (const w of this.waiters) w();
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-8000);
    });
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? null : -1);
        for (const w of this.waiters) w();
        resolve(code);
      }),
    );
  }

  static start(name: string, config: ConfigInput): KafkaWorker {
    const stale = staleDistSource();
    if (stale !== '') throw new Error(`dist/ is older than ${stale}: run \`npm run build\` (the worker runs the compiled engine)`);
    const child = spawn(process.execPath, [WORKER_SCRIPT, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
    return new KafkaWorker(name, child);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get alive(): boolean {
    return this.exitCode === undefined;
  }

  /** Waits for a stdout line matching `predicate` (already seen ones count). */
  waitFor(predicate: (line: WorkerLine) => boolean, timeoutMs: number, what: string): Promise<WorkerLine> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = this.lines.find(predicate);
        if (found) {
          done();
          resolve(found);
        } else if (this.exitCode !== undefined) {
          done();
          reject(new Error(`worker ${this.name} exited (${this.exitCode}) before ${what}:\n${this.describe()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`worker ${this.name}: no ${what} within ${timeoutMs} ms:\n${this.describe()}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  running(timeoutMs = 60_000): Promise<WorkerLine> {
    return this.waitFor((l) => l.event === 'running', timeoutMs, '"running"');
  }

  /** Partitions of `topic` this worker holds now, from its assigned/revoked log lines. */
  heldPartitions(topic: string): number[] {
    const held = new Set<number>();
    for (const l of this.lines) {
      const kind = l.msg === 'partitions assigned' ? 1 : l.msg === 'partitions revoked' ? -1 : 0;
      for (const tp of kind !== 0 ? (l.partitions ?? []) : []) {
        if (tp.topic !== topic) continue;
        if (kind > 0) held.add(tp.partition);
        else held.delete(tp.partition);
      }
    }
    return [...held].sort((a, b) => a - b);
  }

  /** Every partition of `topic` this worker was ever assigned. */
  everAssigned(topic: string): number[] {
    const seen = new Set<number>();
    for (const l of this.lines) if (l.msg === 'partitions assigned') for (const tp of l.partitions ?? []) if (tp.topic === topic) seen.add(tp.partition);
    return [...seen].sort((a, b) => a - b);
  }

  /** SIGTERM: commit, close tasks, leave the group. Resolves with the exit code. */
  async stop(timeoutMs = 60_000): Promise<number | null> {
    if (this.alive) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  async kill(): Promise<void> {
    if (this.alive) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** Writes every stdout line to `file` (for a failed test's report). */
  saveLog(file: string): void {
    appendFileSync(file, `${this.lines.map((l) => JSON.stringify({ worker: this.name, ...l })).join('\n')}\n--- ${this.name} stderr ---\n${this.stderr}\n`);
  }

  describe(): string {
    const tail = this.lines.slice(-15).map((l) => JSON.stringify(l)).join('\n');
    return `--- stdout (last lines) ---\n${tail}\n--- stderr ---\n${this.stderr.slice(-3000)}`;
  }
}

// ---------------------------------------------------------------- in-process application

export interface InProcessApp {
  app: KafkaApp;
  /** Every log record of the application (warnings and errors are also written to stderr). */
  logs: Array<{ level: number; msg: string; [field: string]: unknown }>;
  /** Rejects as soon as the run loop throws (race it against waits so a failure is not a timeout). */
  failed: Promise<never>;
  /** Stops the run loop, commits and closes (checkpoints, leaves the group). */
  stop(): Promise<void>;
}

/** Starts the Kafka-mode application in this process (warnings and errors logged to stderr). */
export async function startInProcess(config: ConfigInput, metrics = new EngineMetrics()): Promise<InProcessApp> {
  const logs: InProcessApp['logs'] = [];
  const logger = pino(
    { level: process.env.SAMPLELOOP_TEST_KAFKA_LOG ?? 'info', name: 'kafka-test' },
    {
      write(line: string) {
        const record = JSON.parse(line) as InProcessApp['logs'][number];
        logs.push(record);
        if (record.level >= 40) process.stderr.write(line);
      },
    },
  );
  const app = await startKafkaApp(parseConfig(config), { logger, metrics });
  const controller = new AbortController();
  const running = app.runtime.run(controller.signal);
  const failed = running.then(
    () => new Promise<never>(() => undefined),
    (err: unknown) => Promise.reject(err instanceof Error ? err : new Error(String(err))),
  );
  failed.catch(() => undefined);
  let stopped = false;
  return {
    app,
    logs,
    failed,
    async stop() {
      if (stopped) return;
      stopped = true;
      controller.abort();
      try {
        await running;
      } finally {
        await app.close();
      }
    },
  };
}

/** A short account of how two per-key maps differ ('' when equal), for readable failures. */
export function differences<V>(actual: ReadonlyMap<string, V>, expected: ReadonlyMap<string, V>, show = 3): string {
  const missing = [...expected.keys()].filter((k) => !actual.has(k)).sort();
  const extra = [...actual.keys()].filter((k) => !expected.has(k)).sort();
  const differing = [...expected.keys()].filter((k) => actual.has(k) && JSON.stringify(actual.get(k)) !== JSON.stringify(expected.get(k))).sort();
  if (missing.length + extra.length + differing.length === 0) return '';
  const lines = [`${missing.length} missing, ${extra.length} unexpected, ${differing.length} different (of ${expected.size} expected keys)`];
  for (const k of missing.slice(0, show)) lines.push(`  missing ${k}: ${JSON.stringify(expected.get(k))}`);
  for (const k of extra.slice(0, show)) lines.push(`  unexpected ${k}: ${JSON.stringify(actual.get(k))}`);
  for (const k of differing.slice(0, show)) lines.push(`  ${k}:\n    actual   ${JSON.stringify(actual.get(k))}\n    expected ${JSON.stringify(expected.get(k))}`);
  return lines.join('\n');
}

/** Polls `condition` every 50 ms until it holds. */
export async function waitUntil(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * At-least-once check: nothing expected is missing, and every extra record is an identical
 * re-emission of an expected one. Returns '' when that holds, else a short account.
 */
export function atLeastOnceDifferences(actual: ReadonlyMap<string, ComparableSample[]>, expected: ReadonlyMap<string, ComparableSample[]>, show = 3): string {
  const problems: string[] = [];
  for (const [key, want] of expected) {
    const got = (actual.get(key) ?? []).map((s) => JSON.stringify(s));
    const wantJson = want.map((s) => JSON.stringify(s));
    const missing = wantJson.filter((w) => !got.includes(w));
    const foreign = got.filter((g) => !wantJson.includes(g));
    if (missing.length > 0) problems.push(`${key}: missing ${missing.join(' ')}`);
    if (foreign.length > 0) problems.push(`${key}: not an identical re-emission: ${foreign.join(' ')}`);
  }
  for (const key of actual.keys()) if (!expected.has(key)) problems.push(`${key}: unexpected samples`);
  if (problems.length === 0) return '';
  return [`${problems.length} keys differ`, ...problems.slice(0, show)].join('\n');
}

/** Number of sample records beyond the expected ones (identical re-emissions). */
export function duplicateCount(actual: ReadonlyMap<string, ComparableSample[]>, expected: ReadonlyMap<string, ComparableSample[]>): number {
  let n = 0;
  for (const [key, got] of actual) n += got.length - (expected.get(key)?.length ?? 0);
  return n;
}
