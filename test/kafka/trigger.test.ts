/**
 * The retrain trigger on Kafka: samples (keyed by request ID, spread over partitions) are re-keyed by
 * category through the repartition topic, counted by the trigger task that owns the category, and a
 * RetrainTrigger whose snapshot covers exactly the counted samples lands on retrain-triggers.
 */
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { afterAll, describe, expect, it } from 'vitest';
import { connectProducer, createTestApp, disconnect, kafkaEndpoints, produceKeyed, readTopic, startInProcess, waitUntil, type InProcessApp, type TestApp } from './helpers.js';

const endpoints = kafkaEndpoints();
const PARTITIONS = 2;
const T0 = Date.now() - 3600_000;
const SAMPLES = 8;

interface DecodedTrigger {
  category: string;
  reason: string;
  servingVersion: string;
  snapshot: { topic: string; offsets: Array<{ partition: number; offset: number }>; sampleCount: number };
}

interface FraudRequest {
  requestId: string;
  amount: number;
  modelVersion: string;
  /** The feedback: `correct` or `actualLabel`. */
  feedback: { correct: boolean } | { actualLabel: string };
}

/** Produces a prediction (category fraud, predicted legit) and its feedback 300 ms later for each request, request i at T0 + i s. */
async function produceTraffic(test: TestApp, requests: readonly FraudRequest[]): Promise<void> {
  const producer = await connectProducer(endpoints!.bootstrap);
  try {
    const at = (i: number): number => T0 + i * 1000;
    const prediction = (r: FraudRequest, i: number): object => ({
      requestId: r.requestId,
      category: 'fraud',
      features: { amount: r.amount, tenure: i % 5 },
      attributes: { channel: 'web' },
      predictedLabel: 'legit',
      scores: { fraud: 0.4, legit: 0.6 },
      modelVersion: r.modelVersion,
      requestTimestamp: at(i),
      timestamp: at(i),
    });
    await produceKeyed(producer, test.topics.predictions, PARTITIONS, requests.map((r, i) => ({ key: r.requestId, timestamp: at(i), value: Buffer.from(JSON.stringify(prediction(r, i))) })));
    await produceKeyed(
      producer,
      test.topics.feedback,
      PARTITIONS,
      requests.map((r, i) => ({ key: r.requestId, timestamp: at(i) + 300, value: Buffer.from(JSON.stringify({ requestId: r.requestId, timestamp: at(i) + 300, ...r.feedback })) })),
    );
  } finally {
    await disconnect(producer);
  }
}

/** Reads `topic` until `decode` gives at least one value (or the application fails). */
async function awaitRecords<T>(app: InProcessApp, topic: string, decode: (value: Buffer) => Promise<T> | T, what: string): Promise<T[]> {
  let values: T[] = [];
  await Promise.race([
    app.failed,
    waitUntil(
      async () => {
        const messages = await readTopic(endpoints!.bootstrap, topic, PARTITIONS, { readCommitted: true }).catch(() => []);
        values = await Promise.all(messages.map((m) => decode(m.value as Buffer)));
        return values.length > 0;
      },
      120_000,
      what,
    ),
  ]);
  return values;
}

describe.skipIf(endpoints === null)('retrain trigger on Kafka', () => {
  const apps: TestApp[] = [];
  const running: InProcessApp[] = [];
  afterAll(async () => {
    for (const r of running) await r.stop().catch(() => undefined);
    apps.forEach((a) => a.cleanup());
  });

  /** A fresh application (own topics) with the trigger on, plus `extra` settings. */
  /** A fresh application (own topics) with the trigger on, plus `extra` settings; `instance` starts another instance of it. */
  async function start(prefix: string, minNewSamples: number, extra: object = {}): Promise<{ test: TestApp; app: InProcessApp; instance(id: string): Promise<InProcessApp> }> {
    const test = createTestApp(endpoints!, prefix, PARTITIONS);
    apps.push(test);
    const instance = async (id: string): Promise<InProcessApp> => {
      const app = await startInProcess({
        ...test.config({ instanceId: id }),
        log: { level: 'warn' as const },
        trigger: { enabled: true, minNewSamples, minLiveAccuracy: 0, maxAgeMs: null, checkIntervalMs: 200 },
        ...extra,
      });
      running.push(app);
      return app;
    };
    return { test, app: await instance(`${prefix}-1`), instance };
  }

  it('counts samples per category across partitions and fires with a snapshot of exactly the counted samples', async () => {
    const kafka = endpoints!;
    const { test, app } = await start('trigger', 6);

    await produceTraffic(
      test,
      Array.from({ length: SAMPLES }, (_, i) => ({ requestId: `tr-${i}`, amount: i + 0.25, modelVersion: '1.0.0', feedback: { correct: true } })),
    );
    const registry = new SchemaRegistry({ host: kafka.registryUrl });
    const triggers = await awaitRecords(app, test.topics.retrainTriggers, async (v) => (await registry.decode(v)) as DecodedTrigger, 'a retrain trigger on Kafka');
    const samples = await readTopic(kafka.bootstrap, test.topics.samples, PARTITIONS, { readCommitted: true });
    expect(samples).toHaveLength(SAMPLES);
    expect(triggers).toHaveLength(1);
    const trigger = triggers[0] as DecodedTrigger;
    expect(trigger).toMatchObject({ category: 'fraud', reason: 'sample-count', servingVersion: '1.0.0' }); // the version the samples name
    expect(trigger.snapshot.topic).toBe(test.topics.samples);
    expect(trigger.snapshot.offsets.map((o) => o.partition)).toEqual([0, 1]);
    // Per samples partition, the trigger counted a prefix: the offsets add up to the samples it counted.
    expect(trigger.snapshot.sampleCount).toBeGreaterThanOrEqual(6);
    expect(trigger.snapshot.offsets.reduce((n, o) => n + o.offset, 0)).toBe(trigger.snapshot.sampleCount);
    for (const o of trigger.snapshot.offsets) expect(o.offset).toBeLessThanOrEqual(samples.filter((m) => m.partition === o.partition).length);
  }, 180_000);

  it('closes the loop on Kafka with the trainer on in two instances: the trigger fires, one trainer trains on the snapshot, records its decision and publishes the version once', async () => {
    const kafka = endpoints!;
    const { test, app, instance } = await start('trainer', 40, {
      // no version in the ledger: the first-version rule fires at 40 samples
      trigger: { enabled: true, minNewSamples: 40, minFirstVersionSamples: 40, minLiveAccuracy: 0, maxAgeMs: null, checkIntervalMs: 200 },
      trainer: { enabled: true, minTrainSamples: 10, minHoldoutSamples: 5, holdoutFraction: 0.25, pollIntervalMs: 200 },
    });
    const second = await instance('trainer-2');
    expect(app.app.trainer).toBeDefined();
    expect(second.app.trainer).toBeDefined();

    // Two well separated classes: amount decides the label.
    await produceTraffic(
      test,
      Array.from({ length: 48 }, (_, i) => ({
        requestId: `loop-${i}`,
        amount: (i % 2 === 0 ? 900 : 10) + (i % 7),
        modelVersion: '0',
        feedback: { actualLabel: i % 2 === 0 ? 'fraud' : 'legit' },
      })),
    );
    type Decision = { decision: string; reason: string; category: string; candidateVersion: string | null; sampleCount: number; candidateAccuracy: number | null };
    const decisions = await awaitRecords(app, test.topics.trainerDecisions, (v) => JSON.parse(v.toString('utf8')) as Decision, 'a trainer decision on Kafka');
    expect(decisions).toHaveLength(1);
    const decision = decisions[0]!;
    expect(decision).toMatchObject({ decision: 'promoted', reason: 'no-serving-version', category: 'fraud', candidateVersion: '1' });
    expect(decision.sampleCount).toBeGreaterThanOrEqual(40);
    expect(decision.candidateAccuracy).toBe(1);

    const registry = new SchemaRegistry({ host: kafka.registryUrl });
    const models = await readTopic(kafka.bootstrap, test.topics.models, 1, { readCommitted: true });
    const versions = await Promise.all(models.map(async (m) => (await registry.decode(m.value as Buffer)) as { category: string; version: string; trainer: string; sequence: number }));
    expect(versions.map((v) => [v.category, v.version, v.sequence])).toEqual([['fraud', '1', 1]]);
    expect(versions[0]?.trainer).toBe('sampleloop-logreg/1');

    // Both instances kept polling the whole time, and the trigger's offset was committed for the
    // trainer's group: an instance that starts afresh does not handle it again either.
    await app.stop();
    await second.stop();
    const restarted = await instance('trainer-3');
    await Promise.race([restarted.failed, new Promise((resolve) => setTimeout(resolve, 8000))]);
    const after = await readTopic(kafka.bootstrap, test.topics.trainerDecisions, PARTITIONS, { readCommitted: true });
    expect(after).toHaveLength(1);
    expect(await readTopic(kafka.bootstrap, test.topics.models, 1, { readCommitted: true })).toHaveLength(1);
  }, 240_000);
});
