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

describe.skipIf(endpoints === null)('retrain trigger on Kafka', () => {
  const apps: TestApp[] = [];
  const running: InProcessApp[] = [];
  afterAll(async () => {
    for (const r of running) await r.stop().catch(() => undefined);
    apps.forEach((a) => a.cleanup());
  });

  it('counts samples per category across partitions and fires with a snapshot of exactly the counted samples', async () => {
    const kafka = endpoints!;
    const test = createTestApp(kafka, 'trigger', PARTITIONS);
    apps.push(test);
    const config = {
      ...test.config({ instanceId: 'trigger-1' }),
      log: { level: 'warn' as const },
      trigger: { enabled: true, minNewSamples: 6, minLiveAccuracy: 0, maxAgeMs: null, checkIntervalMs: 200 },
    };
    const app = await startInProcess(config);
    running.push(app);

    const producer = await connectProducer(kafka.bootstrap);
    try {
      const ids = Array.from({ length: SAMPLES }, (_, i) => `tr-${i}`);
      const predictions = ids.map((requestId, i) => ({
        key: requestId,
        timestamp: T0 + i * 1000,
        value: Buffer.from(
          JSON.stringify({
            requestId,
            category: 'fraud',
            features: { amount: i + 0.25 },
            attributes: { channel: 'web' },
            predictedLabel: 'legit',
            scores: { fraud: 0.3, legit: 0.7 },
            modelVersion: '1.0.0',
            requestTimestamp: T0 + i * 1000,
            timestamp: T0 + i * 1000,
          }),
        ),
      }));
      const feedback = ids.map((requestId, i) => ({ key: requestId, timestamp: T0 + i * 1000 + 500, value: Buffer.from(JSON.stringify({ requestId, timestamp: T0 + i * 1000 + 500, correct: true })) }));
      await produceKeyed(producer, test.topics.predictions, PARTITIONS, predictions);
      await produceKeyed(producer, test.topics.feedback, PARTITIONS, feedback);
    } finally {
      await disconnect(producer);
    }

    let triggers: DecodedTrigger[] = [];
    const registry = new SchemaRegistry({ host: kafka.registryUrl });
    await Promise.race([
      app.failed,
      waitUntil(
        async () => {
          const messages = await readTopic(kafka.bootstrap, test.topics.retrainTriggers, PARTITIONS, { readCommitted: true }).catch(() => []);
          triggers = [];
          for (const m of messages) triggers.push((await registry.decode(m.value as Buffer)) as DecodedTrigger);
          return triggers.length > 0;
        },
        90_000,
        'a retrain trigger on Kafka',
      ),
    ]);
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

  it('closes the loop on Kafka: the trigger fires, the built-in trainer trains on the snapshot, records its decision and publishes the version to the ledger', async () => {
    const kafka = endpoints!;
    const test = createTestApp(kafka, 'trainer', PARTITIONS);
    apps.push(test);
    const config = {
      ...test.config({ instanceId: 'trainer-1' }),
      log: { level: 'warn' as const },
      trigger: { enabled: true, minNewSamples: 40, minLiveAccuracy: 0, maxAgeMs: null, checkIntervalMs: 200 },
      trainer: { enabled: true, minTrainSamples: 10, minHoldoutSamples: 5, holdoutFraction: 0.25, pollIntervalMs: 200 },
    };
    const app = await startInProcess(config);
    running.push(app);
    expect(app.app.trainer).toBeDefined();

    // Two well separated classes: amount decides the label.
    const ids = Array.from({ length: 48 }, (_, i) => `loop-${i}`);
    const label = (i: number): string => (i % 2 === 0 ? 'fraud' : 'legit');
    const producer = await connectProducer(kafka.bootstrap);
    try {
      await produceKeyed(
        producer,
        test.topics.predictions,
        PARTITIONS,
        ids.map((requestId, i) => ({
          key: requestId,
          timestamp: T0 + i * 1000,
          value: Buffer.from(
            JSON.stringify({
              requestId,
              category: 'fraud',
              features: { amount: (i % 2 === 0 ? 900 : 10) + (i % 7), tenure: i % 5 },
              attributes: { channel: 'web' },
              predictedLabel: 'legit',
              scores: { fraud: 0.5, legit: 0.5 },
              modelVersion: '0',
              requestTimestamp: T0 + i * 1000,
              timestamp: T0 + i * 1000,
            }),
          ),
        })),
      );
      await produceKeyed(
        producer,
        test.topics.feedback,
        PARTITIONS,
        ids.map((requestId, i) => ({ key: requestId, timestamp: T0 + i * 1000 + 300, value: Buffer.from(JSON.stringify({ requestId, timestamp: T0 + i * 1000 + 300, actualLabel: label(i) })) })),
      );
    } finally {
      await disconnect(producer);
    }

    let decisions: Array<{ decision: string; reason: string; category: string; candidateVersion: string | null; sampleCount: number; candidateAccuracy: number | null }> = [];
    await Promise.race([
      app.failed,
      waitUntil(
        async () => {
          const messages = await readTopic(kafka.bootstrap, test.topics.trainerDecisions, PARTITIONS, { readCommitted: true }).catch(() => []);
          decisions = messages.map((m) => JSON.parse((m.value as Buffer).toString('utf8')) as (typeof decisions)[number]);
          return decisions.length > 0;
        },
        120_000,
        'a trainer decision on Kafka',
      ),
    ]);
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

    // The trigger's offset was committed for the trainer's group: a restarted application does not handle it again.
    await app.stop();
    const restarted = await startInProcess(config);
    running.push(restarted);
    await Promise.race([restarted.failed, new Promise((resolve) => setTimeout(resolve, 3000))]);
    expect(await restarted.app.trainer?.processPending()).toEqual([]);
    const after = await readTopic(kafka.bootstrap, test.topics.trainerDecisions, PARTITIONS, { readCommitted: true });
    expect(after).toHaveLength(1);
  }, 240_000);
});
