/**
 * The issue 11 reproducer on the real broker: a backlog of prediction/feedback pairs from an hour
 * ago, produced before the application starts, behind one record that is not JSON at the head of
 * each input topic: one produced with `sampleloop produce` (the CLI's Kafka path), one by a producer
 * that stamps the wall clock. Neither may hold its partition back: every pair becomes its sample,
 * nothing is late or orphaned, and each bad record is a dead letter.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { kafkaAccess } from '../../access/kafka.js';
import { KafkaAdmin } from '../../engine/kafka/admin.js';
import { silentLogger } from '../../engine/logger.js';
import { ConfluentSchemaRegistry } from '../../schemas/confluent-registry.js';
import {
  committedOffsets,
  connectConsumer,
  connectProducer,
  createTestApp,
  decodeSamples,
  disconnect,
  kafkaEndpoints,
  produceKeyed,
  readTopic,
  startInProcess,
  waitUntil,
  type TestApp,
} from './helpers.js';

const endpoints = kafkaEndpoints();
/** Spread over the last hour, 30 s apart; each feedback 5 s to 65 s after its prediction. */
const PAIRS = 100;

describe.skipIf(endpoints === null)('Kafka mode: one bad record does not stall a backlog', () => {
  const apps: TestApp[] = [];
  afterAll(() => apps.forEach((a) => a.cleanup()));

  it(`${PAIRS} pairs from an hour ago behind a leading \`not json at all\`: ${PAIRS} exact samples, nothing late`, async () => {
    const kafka = endpoints!;
    const test = createTestApp(kafka, 'backlog', 1);
    apps.push(test);
    const now = Date.now();
    const t0 = now - 3600_000;
    const predictions: string[] = ['not json at all'];
    const feedback: string[] = [];
    const expected = new Map<string, { label: string; labelSource: string }>();
    for (let i = 0; i < PAIRS; i++) {
      const requestId = `req-${String(i).padStart(3, '0')}`;
      const timestamp = t0 + i * 30_000;
      const predictedLabel = i % 2 === 0 ? 'fraud' : 'legit';
      predictions.push(
        JSON.stringify({
          requestId,
          category: 'fraud',
          features: { amount: 100 + i },
          attributes: {},
          predictedLabel,
          scores: { fraud: i % 2 === 0 ? 0.8 : 0.2, legit: i % 2 === 0 ? 0.2 : 0.8 },
          modelVersion: 'v1',
          requestTimestamp: timestamp,
          timestamp,
        }),
      );
      const actualLabel = i % 3 === 0 ? (predictedLabel === 'fraud' ? 'legit' : 'fraud') : predictedLabel;
      feedback.push(JSON.stringify({ requestId, timestamp: timestamp + 5_000 + (i % 7) * 10_000, source: 'core-banking', actualLabel, correct: null }));
      expected.set(requestId, { label: actualLabel, labelSource: actualLabel === predictedLabel ? 'CONFIRMED' : 'CORRECTED' });
    }

    const admin = new KafkaAdmin({ 'bootstrap.servers': kafka.bootstrap, 'log_level': 3 }, silentLogger());
    try {
      await admin.ensureTopics([test.topics.predictions, test.topics.feedback].map((name) => ({ name, partitions: 1, compact: false })), 1);
    } finally {
      admin.close();
    }
    // A producer that sets no event time: its record carries the wall clock, ahead of the whole backlog.
    const producer = await connectProducer(kafka.bootstrap);
    try {
      await produceKeyed(producer, test.topics.feedback, 1, [{ key: 'wall-clock', value: Buffer.from('not json either'), timestamp: now }]);
    } finally {
      await disconnect(producer);
    }
    const access = kafkaAccess({ 'bootstrap.servers': kafka.bootstrap, 'log_level': 3 }, new ConfluentSchemaRegistry({ url: kafka.registryUrl }), silentLogger(), { partitions: 1, replicationFactor: 1 });
    await access.produce(test.topics.predictions, predictions.join('\n'));
    await access.produce(test.topics.feedback, feedback.join('\n'));

    // Windows shorter than the backlog's span, so a topic that runs ahead closes them before the other is read.
    const app = await startInProcess({ ...test.config({ instanceId: 'solo' }), join: { beforeMs: 30_000, afterMs: 10 * 60_000, graceMs: 60_000, idleAdvance: false } });
    // Until the application committed past every input record (at-least-once: its outputs are written by then).
    const monitor = await connectConsumer(kafka.bootstrap, test.run, false);
    try {
      const consumed = async (): Promise<boolean> =>
        (await committedOffsets(monitor, test.topics.predictions, 1))[0] === PAIRS + 1 && (await committedOffsets(monitor, test.topics.feedback, 1))[0] === PAIRS + 1;
      await Promise.race([waitUntil(consumed, 90_000, 'every input record committed'), app.failed]);
    } finally {
      await disconnect(monitor);
      await app.stop();
    }

    const samples = await decodeSamples(kafka.registryUrl, await readTopic(kafka.bootstrap, test.topics.samples, 1, { readCommitted: true }));
    const actual = new Map(samples.map((s) => [s.sample.requestId, { label: s.sample.label, labelSource: s.sample.labelSource }]));
    expect(samples).toHaveLength(PAIRS);
    expect(actual).toEqual(expected);
    expect(await readTopic(kafka.bootstrap, test.topics.late, 1, { readCommitted: true })).toEqual([]);
    expect(await readTopic(kafka.bootstrap, test.topics.orphans, 1, { readCommitted: true })).toEqual([]);
    const dead = await readTopic(kafka.bootstrap, test.topics.deadLetters, 1, { readCommitted: true });
    const header = (m: (typeof dead)[number], name: string): string =>
      String(((m.headers ?? []) as Array<Record<string, Buffer | string>>).find((h) => name in h)?.[name] ?? '');
    expect(dead.map((m) => [header(m, 'sampleloop.dlq.source.topic'), header(m, 'sampleloop.dlq.source.offset'), header(m, 'sampleloop.dlq.reason.code')]).sort()).toEqual(
      [
        [test.topics.feedback, '0', 'undecodable'],
        [test.topics.predictions, '0', 'undecodable'],
      ].sort(),
    );
  }, 180_000);
});
