/**
 * Kafka load generator shared by the Kafka benchmarks: the traffic of bench/traffic.ts (N predictions and
 * N feedback, 36 features, realistic attributes, feedback 0.1–30 s after its prediction in event time)
 * produced as JSON values keyed by requestId, at a target rate or as fast as possible. Every record carries
 * the wall-clock time it was handed to the producer in the header `sent-at` (ms since the epoch, decimal).
 *
 * Event times are shifted so the last event is "now" when a run starts (brokers reject or expire records far
 * from the wall clock); the shift rewrites the 13-digit timestamps inside the pre-encoded JSON in place.
 *
 * CLI: `node dist/bench/kafka-load.js --predictions N [--rate R] [--bootstrap 127.0.0.1:19092]
 *        [--predictions-topic predictions] [--feedback-topic feedback] [--seed 42]`
 * With `--serve` (used by bench/kafka-join.ts through child_process.fork) it generates once and produces
 * on request over IPC, so the producer's CPU is not the harness's.
 */
import { parseArgs } from 'node:util';
import { KafkaJS } from '@confluentinc/kafka-javascript';
import { SampleloopError, UsageError, errorMessage } from '../engine/errors.js';
import { isMainModule } from './measure.js';
import { generateBenchTraffic, type BenchTraffic, type ExpectedOutcome } from './traffic.js';

export const DEFAULT_BOOTSTRAP = '127.0.0.1:19092';
export const LOAD_PARTITIONS = 4;
export const SENT_AT_HEADER = 'sent-at';
/** Records handed to the producer per call; also the pacing granularity in rate mode. */
const SEND_BATCH = 500;
const MAX_BATCHES_IN_FLIGHT = 32;

export class KafkaBenchError extends SampleloopError {
  constructor(message: string, options?: { retriable?: boolean; cause?: unknown }) {
    super('SL_KAFKA', message, options);
  }
}

export interface TopicSpec {
  name: string;
  partitions: number;
  config?: Record<string, string>;
}

function adminClient(bootstrap: string): KafkaJS.Admin {
  return new KafkaJS.Kafka({ 'bootstrap.servers': bootstrap, log_level: 3 }).admin();
}

/** Creates the topics that do not exist; an existing topic with another partition count is an error. Returns the created names. */
export async function ensureTopics(bootstrap: string, topics: readonly TopicSpec[]): Promise<string[]> {
  const admin = adminClient(bootstrap);
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t.name));
    if (missing.length > 0) {
      await admin.createTopics({
        timeout: 15_000,
        topics: missing.map((t) => ({
          topic: t.name,
          numPartitions: t.partitions,
          replicationFactor: 1,
          configEntries: Object.entries(t.config ?? {}).map(([name, value]) => ({ name, value })),
        })),
      });
    }
    const present = topics.filter((t) => existing.has(t.name));
    if (present.length > 0) {
      const metadata = await admin.fetchTopicMetadata({ topics: present.map((t) => t.name) });
      for (const t of present) {
        const found = metadata.find((m) => m.name === t.name)?.partitions.length;
        if (found !== t.partitions) {
          throw new KafkaBenchError(`topic ${t.name} exists with ${String(found)} partitions, the benchmark needs ${t.partitions}; delete it or use other topic names`);
        }
      }
    }
    return missing.map((t) => t.name);
  } finally {
    await admin.disconnect();
  }
}

/** Deletes every topic whose name starts with `prefix` (a run's inputs, outputs and an engine's internal topics). */
export async function deleteTopicsWithPrefix(bootstrap: string, prefix: string): Promise<string[]> {
  if (prefix.length < 8) throw new UsageError(`refusing to delete topics by the short prefix "${prefix}"`);
  const admin = adminClient(bootstrap);
  await admin.connect();
  try {
    const names = (await admin.listTopics()).filter((name) => name.startsWith(prefix));
    if (names.length > 0) await admin.deleteTopics({ topics: names, timeout: 30_000 });
    return names;
  } finally {
    await admin.disconnect();
  }
}

/** Records per topic (sum of the partitions' high watermarks; transaction markers count too); topics that do not exist are left out. */
export async function countRecords(bootstrap: string, topics: readonly string[]): Promise<Record<string, number>> {
  const admin = adminClient(bootstrap);
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const counts: Record<string, number> = {};
    for (const topic of topics) {
      if (!existing.has(topic)) continue;
      const offsets = await admin.fetchTopicOffsets(topic);
      counts[topic] = offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
    }
    return counts;
  } finally {
    await admin.disconnect();
  }
}

export interface ProduceOptions {
  bootstrap: string;
  predictionsTopic: string;
  feedbackTopic: string;
  /** Input records (predictions + feedback) per second; null for as fast as possible. */
  ratePerSecond: number | null;
}

export interface ProduceResult {
  records: number;
  /** Wall clock (ms since the epoch) when the first record was handed to the producer. */
  firstSendAt: number;
  lastSendAt: number;
  /** When the broker had acknowledged every record. */
  allDeliveredAt: number;
  /** `sent-at` of the later of each request's two inputs, in the order of `PreparedLoad.requestIds`. */
  laterSentAt: Float64Array;
  /** Event-time shift applied to the generated traffic for this run. */
  eventTimeShiftMs: number;
}

/** Pre-generated traffic ready to be produced any number of times. */
export class PreparedLoad {
  readonly traffic: BenchTraffic;
  /** Request ids in the order of each request's later event (the one that completes the pair). */
  readonly requestIds: string[];
  private readonly laterEvents: Uint32Array;
  private shiftMs = 0;

  private constructor(traffic: BenchTraffic) {
    this.traffic = traffic;
    const seen = new Set<string>();
    const ids: string[] = [];
    const later: number[] = [];
    for (let j = 0; j < traffic.events; j++) {
      const id = traffic.requestId(j);
      if (seen.delete(id)) {
        ids.push(id);
        later.push(j);
      } else {
        seen.add(id);
      }
    }
    if (seen.size > 0) throw new KafkaBenchError(`${seen.size} requests have only one input event; the traffic generator changed`);
    this.requestIds = ids;
    this.laterEvents = Uint32Array.from(later);
  }

  static generate(predictions: number, seed = 42): PreparedLoad {
    return new PreparedLoad(generateBenchTraffic({ predictions, seed, formats: ['json'] }));
  }

  get records(): number {
    return this.traffic.events;
  }

  get expected(): ExpectedOutcome {
    return this.traffic.expected;
  }

  /** Event time of `event` after the current shift. */
  eventTime(event: number): number {
    return this.traffic.timestamp(event) + this.shiftMs;
  }

  /** Rewrites every record's timestamps so the last event is at `lastEventAt`; returns the total shift. */
  shiftEventTimes(lastEventAt: number): number {
    const delta = lastEventAt - this.eventTime(this.traffic.events - 1);
    if (delta !== 0) {
      for (let j = 0; j < this.traffic.events; j++) shiftJsonTimestamps(this.traffic.bytes('json', j), delta);
      this.shiftMs += delta;
    }
    return this.shiftMs;
  }

  async produce(options: ProduceOptions): Promise<ProduceResult> {
    if (options.ratePerSecond !== null && !(options.ratePerSecond > 0)) throw new UsageError(`rate must be > 0, got ${options.ratePerSecond}`);
    const shift = this.shiftEventTimes(Date.now());
    const producer = new KafkaJS.Kafka({}).producer({
      'bootstrap.servers': options.bootstrap,
      // The Java client's default partitioner, so keys land where a Java producer would put them.
      partitioner: 'murmur2_random',
      'linger.ms': 5,
      'batch.size': 1_000_000,
      acks: -1,
      'enable.idempotence': true,
      log_level: 3,
    });
    await producer.connect();
    try {
      const events = this.traffic.events;
      const sentAt = new Float64Array(events);
      const inFlight: Array<Promise<unknown>> = [];
      const startedAt = performance.now();
      let next = 0;
      while (next < events) {
        const due = options.ratePerSecond === null ? events : Math.min(events, Math.floor(((performance.now() - startedAt) * options.ratePerSecond) / 1000) + 1);
        if (next >= due) {
          await sleep(Math.max(1, Math.ceil(((next + 1 - due) * 1000) / (options.ratePerSecond as number))));
          continue;
        }
        if (inFlight.length >= MAX_BATCHES_IN_FLIGHT) {
          await inFlight.shift();
          continue;
        }
        const count = Math.min(SEND_BATCH, due - next);
        inFlight.push(this.sendBatch(producer, options, next, count, sentAt));
        next += count;
      }
      await Promise.all(inFlight);
      const allDeliveredAt = Date.now();
      const laterSentAt = new Float64Array(this.laterEvents.length);
      for (let k = 0; k < laterSentAt.length; k++) laterSentAt[k] = sentAt[this.laterEvents[k] as number] as number;
      return {
        records: events,
        firstSendAt: sentAt[0] as number,
        lastSendAt: sentAt[events - 1] as number,
        allDeliveredAt,
        laterSentAt,
        eventTimeShiftMs: shift,
      };
    } finally {
      await producer.disconnect();
    }
  }

  private sendBatch(producer: KafkaJS.Producer, options: ProduceOptions, from: number, count: number, sentAt: Float64Array): Promise<unknown> {
    const now = Date.now();
    const headers = { [SENT_AT_HEADER]: String(now) };
    const predictions: KafkaJS.Message[] = [];
    const feedback: KafkaJS.Message[] = [];
    for (let j = from; j < from + count; j++) {
      sentAt[j] = now;
      const message: KafkaJS.Message = {
        key: this.traffic.requestId(j),
        value: this.traffic.bytes('json', j),
        timestamp: String(this.eventTime(j)),
        headers,
      };
      (this.traffic.kind(j) === 'prediction' ? predictions : feedback).push(message);
    }
    const topicMessages: KafkaJS.TopicMessages[] = [];
    if (predictions.length > 0) topicMessages.push({ topic: options.predictionsTopic, messages: predictions });
    if (feedback.length > 0) topicMessages.push({ topic: options.feedbackTopic, messages: feedback });
    return producer.sendBatch({ topicMessages });
  }
}

const TIMESTAMP_KEYS = [Buffer.from('"timestamp":'), Buffer.from('"requestTimestamp":')];
const TIMESTAMP_DIGITS = 13;

/** Adds `deltaMs` to the `timestamp` / `requestTimestamp` fields of one JSON record, in place (13-digit epoch ms stay 13 digits). */
export function shiftJsonTimestamps(json: Buffer, deltaMs: number): void {
  for (const key of TIMESTAMP_KEYS) {
    const at = json.indexOf(key);
    if (at < 0) continue;
    const start = at + key.length;
    const old = Number(json.toString('latin1', start, start + TIMESTAMP_DIGITS));
    const next = old + deltaMs;
    const digitAfter = json[start + TIMESTAMP_DIGITS];
    if (!Number.isInteger(old) || (digitAfter !== undefined && digitAfter >= 0x30 && digitAfter <= 0x39) || next < 1e12 || next >= 1e13) {
      throw new KafkaBenchError(`cannot shift ${key.toString()} in place in ${json.toString('utf8', 0, 80)}...`);
    }
    json.write(String(next), start, 'latin1');
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** IPC protocol of `--serve` (bench/kafka-join.ts is the other side). */
export type LoadServerRequest = { type: 'produce'; options: ProduceOptions } | { type: 'exit' };
export type LoadServerReply =
  | { type: 'ready'; records: number; expected: ExpectedOutcome; requestIds: string[]; generationSeconds: number; jsonBytes: number }
  | { type: 'produced'; result: ProduceResult }
  | { type: 'failed'; message: string };

async function serve(predictions: number, seed: number): Promise<void> {
  const send = (reply: LoadServerReply): void => {
    process.send?.(reply);
  };
  const started = performance.now();
  const load = PreparedLoad.generate(predictions, seed);
  send({
    type: 'ready',
    records: load.records,
    expected: load.expected,
    requestIds: load.requestIds,
    generationSeconds: (performance.now() - started) / 1000,
    jsonBytes: load.traffic.totalBytes('json'),
  });
  process.on('message', (request: LoadServerRequest) => {
    if (request.type === 'exit') {
      process.disconnect();
      return;
    }
    load.produce(request.options).then(
      (result) => send({ type: 'produced', result }),
      (err: unknown) => send({ type: 'failed', message: errorMessage(err) }),
    );
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      bootstrap: { type: 'string', default: DEFAULT_BOOTSTRAP },
      predictions: { type: 'string', default: '200000' },
      rate: { type: 'string' },
      seed: { type: 'string', default: '42' },
      'predictions-topic': { type: 'string', default: 'predictions' },
      'feedback-topic': { type: 'string', default: 'feedback' },
      serve: { type: 'boolean', default: false },
    },
  });
  const predictions = Number(values.predictions.replaceAll('_', ''));
  const seed = Number(values.seed);
  if (!Number.isInteger(predictions) || predictions < 1) throw new UsageError(`--predictions must be a positive integer, got ${values.predictions}`);
  if (!Number.isInteger(seed)) throw new UsageError(`--seed must be an integer, got ${values.seed}`);
  if (values.serve) {
    await serve(predictions, seed);
    return;
  }
  const rate = values.rate === undefined ? null : Number(values.rate.replaceAll('_', ''));
  const options: ProduceOptions = { bootstrap: values.bootstrap, predictionsTopic: values['predictions-topic'], feedbackTopic: values['feedback-topic'], ratePerSecond: rate };
  await ensureTopics(options.bootstrap, [
    { name: options.predictionsTopic, partitions: LOAD_PARTITIONS },
    { name: options.feedbackTopic, partitions: LOAD_PARTITIONS },
  ]);
  const load = PreparedLoad.generate(predictions, seed);
  const result = await load.produce(options);
  const seconds = (result.allDeliveredAt - result.firstSendAt) / 1000;
  console.log(
    `produced ${result.records.toLocaleString('en-US')} records to ${options.predictionsTopic} + ${options.feedbackTopic} in ${seconds.toFixed(1)} s ` +
      `(${Math.round(result.records / seconds).toLocaleString('en-US')} records/s); expected samples: ${load.expected.samples}`,
  );
}

if (isMainModule(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(`kafka-load: ${errorMessage(err)}`);
    process.exitCode = 1;
  });
}
