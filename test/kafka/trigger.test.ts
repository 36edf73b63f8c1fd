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
});
