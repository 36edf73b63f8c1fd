/**
 * `archive` in Kafka mode: the predictions and feedback topics of the cluster (2 partitions, JSON and
 * Confluent-framed Avro values, one transaction committed and one aborted) are archived read_committed
 * as gzip JSON-lines with sensitive attributes protected; the manifest holds Kafka offsets, so a
 * second run appends nothing; the archive replays to the expected samples. No embedded log is created.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { runArchive } from '../../cli/archive.js';
import { parseConfig } from '../../config/config.js';
import { KafkaAdmin } from '../../engine/kafka/admin.js';
import { call, Producer, type ProducerType } from '../../engine/kafka/client.js';
import { UsageError } from '../../engine/errors.js';
import { partitionForKey } from '../../engine/partitioner.js';
import { MANIFEST_FILE, SKIPPED_FILE } from '../../replay/archive.js';
import { runReplay } from '../../replay/topology.js';
import { protectAsDocumented } from '../helpers/engine-harness.js';
import { connectConsumer, connectProducer, createTestApp, disconnect, highWatermarks, kafkaEndpoints, produceKeyed, readTopic, uniqueRunName, type TestApp } from './helpers.js';

const endpoints = kafkaEndpoints();
const PARTITIONS = 2;
const T0 = Date.now() - 2 * 24 * 3600_000;
const COUNT = 30;

const id = (i: number): string => `ka-${String(i).padStart(3, '0')}`;

function prediction(i: number): Record<string, unknown> {
  return {
    requestId: id(i),
    category: 'fraud',
    features: { amount: i + 0.5 },
    attributes: { name: `Customer ${i}`, phone: '+44 7700 900123', idNumber: `ID-${i}`, channel: 'web' },
    predictedLabel: i % 4 === 0 ? 'fraud' : 'legit',
    scores: { fraud: 0.4, legit: 0.6 },
    modelVersion: '1.0.0',
    requestTimestamp: T0 + i * 1000 - 3,
    timestamp: T0 + i * 1000,
  };
}

function feedback(i: number): Record<string, unknown> {
  return { requestId: id(i), timestamp: T0 + i * 1000 + 5000, source: '', actualLabel: i % 5 === 0 ? 'fraud' : 'legit', correct: null };
}

const json = (value: object): Buffer => Buffer.from(JSON.stringify(value), 'utf8');

/** Records of `topic` in one transaction, committed or aborted. */
async function produceInTransaction(bootstrap: string, topic: string, records: ReadonlyArray<{ key: string; value: Buffer; timestamp: number }>, commit: boolean): Promise<void> {
  const producer: ProducerType = new Producer({ 'bootstrap.servers': bootstrap, log_level: 3, 'transactional.id': uniqueRunName('archive-tx'), dr_cb: true } as ConstructorParameters<typeof Producer>[0]);
  await call('connecting the transactional producer', (cb) => producer.connect({}, cb as never));
  try {
    await call('initializing transactions', (cb) => producer.initTransactions(30_000, cb));
    await call('beginning a transaction', (cb) => producer.beginTransaction(cb));
    for (const r of records) producer.produce(topic, partitionForKey(Buffer.from(r.key), PARTITIONS), r.value, Buffer.from(r.key), r.timestamp);
    if (commit) await call('committing', (cb) => producer.commitTransaction(30_000, cb));
    else {
      await call('flushing', (cb) => producer.flush(30_000, cb));
      await call('aborting', (cb) => producer.abortTransaction(30_000, cb));
    }
  } finally {
    await disconnect(producer);
  }
}

function archivedLines(dir: string, kind: string): Array<Record<string, unknown>> {
  return readdirSync(dir)
    .filter((f) => f.startsWith(`${kind}-`))
    .sort()
    .flatMap((f) =>
      gunzipSync(readFileSync(join(dir, f)))
        .toString('utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    );
}

describe.skipIf(endpoints === null)('archive in Kafka mode', () => {
  const apps: TestApp[] = [];
  afterAll(() => apps.forEach((a) => a.cleanup()));

  it('archives the cluster topics read_committed, continues from Kafka offsets, and replays', async () => {
    const kafka = endpoints!;
    const test = createTestApp(kafka, 'archive', PARTITIONS);
    apps.push(test);
    const config = parseConfig({ ...test.config({ instanceId: 'archive-1' }), log: { level: 'silent' } });
    const admin = new KafkaAdmin({ 'bootstrap.servers': kafka.bootstrap, log_level: 3 }, pino({ level: 'silent' }));
    try {
      await admin.ensureTopics([test.topics.predictions, test.topics.feedback].map((name) => ({ name, partitions: PARTITIONS, compact: false })), 1);
    } finally {
      admin.close();
    }

    // Predictions: JSON, plus one value that is not JSON. Feedback for i % 3 != 0: JSON (plain producer),
    // Avro through the registry, and JSON in a committed transaction; an aborted transaction adds
    // feedback for two requests that must not appear.
    const producer = await connectProducer(kafka.bootstrap);
    try {
      await produceKeyed(producer, test.topics.predictions, PARTITIONS, [
        ...Array.from({ length: COUNT }, (_, i) => ({ key: id(i), value: json(prediction(i)), timestamp: T0 + i * 1000 })),
        { key: 'ka-bad', value: Buffer.from('{"requestId": "ka-bad", "attributes": {"name": "Secret Name"'), timestamp: T0 },
      ]);
      const withFeedback = Array.from({ length: COUNT }, (_, i) => i).filter((i) => i % 3 !== 0);
      const plain = withFeedback.filter((i) => i < 12);
      const avro = withFeedback.filter((i) => i >= 12 && i < 20);
      const transactional = withFeedback.filter((i) => i >= 20);
      await produceKeyed(producer, test.topics.feedback, PARTITIONS, plain.map((i) => ({ key: id(i), value: json(feedback(i)), timestamp: T0 + i * 1000 + 5000 })));
      const registry = new SchemaRegistry({ host: kafka.registryUrl });
      const schema = readFileSync(new URL('../../schemas/Feedback.avsc', import.meta.url), 'utf8');
      const { id: schemaId } = await registry.register({ type: SchemaType.AVRO, schema }, { subject: `${test.topics.feedback}-value` });
      const avroRecords = [];
      for (const i of avro) avroRecords.push({ key: id(i), value: await registry.encode(schemaId, feedback(i)), timestamp: T0 + i * 1000 + 5000 });
      await produceKeyed(producer, test.topics.feedback, PARTITIONS, avroRecords);
      await produceInTransaction(kafka.bootstrap, test.topics.feedback, transactional.map((i) => ({ key: id(i), value: json(feedback(i)), timestamp: T0 + i * 1000 + 5000 })), true);
      await produceInTransaction(kafka.bootstrap, test.topics.feedback, [0, 3].map((i) => ({ key: id(i), value: json(feedback(i)), timestamp: T0 + i * 1000 + 5000 })), false);
    } finally {
      await disconnect(producer);
    }
    const expectedFeedback = Array.from({ length: COUNT }, (_, i) => i).filter((i) => i % 3 !== 0);

    const outDir = join(test.dir, 'archive');
    const first = await runArchive(config, { outDir, maxFileBytes: 64 * 1024 * 1024, raw: false, fromStart: false });
    expect(first).toMatchObject({ records: { gateway: COUNT, business: expectedFeedback.length, requests: 0 }, skipped: 1, tombstones: 0, missingTopics: [test.topics.requests] });
    expect(readdirSync(outDir).sort()).toEqual([MANIFEST_FILE, SKIPPED_FILE, 'business-000001.jsonl.gz', 'gateway-000001.jsonl.gz']);
    expect(first.files.map((f) => f.slice(outDir.length + 1))).toEqual(['gateway-000001.jsonl.gz', 'business-000001.jsonl.gz']);
    // Kafka mode reads the cluster: no embedded log appears in dataDir.
    expect(existsSync(config.dataDir)).toBe(false);

    // Every prediction, attributes protected as the default policy does; the skipped one without content.
    const gateway = archivedLines(outDir, 'gateway');
    expect(gateway).toHaveLength(COUNT);
    const byId = new Map(gateway.map((l) => [l.requestId as string, l]));
    for (let i = 0; i < COUNT; i++) {
      const p = prediction(i);
      expect(byId.get(id(i))).toEqual({ ...p, attributes: protectAsDocumented(p.attributes as Record<string, string>) });
    }
    // Partitions are interleaved by event time.
    const times = gateway.map((l) => l.timestamp as number);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    const rawGateway = gunzipSync(readFileSync(join(outDir, 'gateway-000001.jsonl.gz'))).toString('utf8');
    expect(rawGateway).not.toContain('Customer');
    expect(rawGateway).not.toContain('Secret');
    const skipped = readFileSync(join(outDir, SKIPPED_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(skipped).toEqual([{ topic: test.topics.predictions, partition: partitionForKey(Buffer.from('ka-bad'), PARTITIONS), offset: expect.any(Number) as number, reason: 'not valid JSON' }]);

    // Feedback: JSON, Avro decoded through the registry and committed-transaction records; not the aborted ones.
    const business = archivedLines(outDir, 'business');
    expect(business.map((l) => l.requestId).sort()).toEqual(expectedFeedback.map(id));
    for (const l of business) expect(l).toEqual(feedback(Number((l.requestId as string).slice(3))));

    // Manifest positions are Kafka offsets: predictions up to the high watermark, feedback up to
    // the last committed record + 1 (the markers and aborted records after it are read past).
    const manifest = JSON.parse(readFileSync(join(outDir, MANIFEST_FILE), 'utf8')) as { positions: Record<string, Record<string, number>>; next: Record<string, number> };
    const consumer = await connectConsumer(kafka.bootstrap, uniqueRunName('archive-check'), true);
    try {
      const ends = await highWatermarks(consumer, test.topics.predictions, PARTITIONS);
      expect(manifest.positions[test.topics.predictions]).toEqual(Object.fromEntries(ends.map((end, p) => [String(p), end])));
    } finally {
      await disconnect(consumer);
    }
    const committed = await readTopic(kafka.bootstrap, test.topics.feedback, PARTITIONS, { readCommitted: true });
    expect(committed).toHaveLength(expectedFeedback.length);
    const lastOffsets: Record<string, number> = {};
    for (const m of committed) lastOffsets[String(m.partition)] = Math.max(lastOffsets[String(m.partition)] ?? 0, m.offset + 1);
    expect(manifest.positions[test.topics.feedback]).toEqual(lastOffsets);
    expect(manifest.next).toEqual({ gateway: 2, business: 2 });

    // A second run continues after the manifest's offsets: nothing new, nothing written.
    const started = Date.now();
    const second = await runArchive(config, { outDir, maxFileBytes: 64 * 1024 * 1024, raw: false, fromStart: false });
    expect(second).toMatchObject({ files: [], records: { gateway: 0, business: 0, requests: 0 }, skipped: 0, missingTopics: [test.topics.requests] });
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(readdirSync(outDir).sort()).toEqual([MANIFEST_FILE, SKIPPED_FILE, 'business-000001.jsonl.gz', 'gateway-000001.jsonl.gz']);
    expect(JSON.parse(readFileSync(join(outDir, MANIFEST_FILE), 'utf8'))).toEqual(manifest);

    // The archive replays: a sample per request with feedback, the others unmatched.
    const out = join(test.dir, 'samples.jsonl');
    const replayed = await runReplay({ config, gateway: [join(outDir, 'gateway-*.jsonl.gz')], business: [join(outDir, 'business-*.jsonl.gz')], out: `file:${out}` });
    expect(replayed.records).toEqual({ gateway: COUNT, business: expectedFeedback.length });
    expect(replayed.written).toMatchObject({ samples: expectedFeedback.length, unmatched: COUNT - expectedFeedback.length, orphans: 0 });
    const samples = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { requestId: string; attributes: Record<string, string> });
    expect(samples.map((s) => s.requestId).sort()).toEqual(expectedFeedback.map(id));
    expect(samples.find((s) => s.requestId === id(1))?.attributes).toEqual(protectAsDocumented(prediction(1).attributes as Record<string, string>));
  });

  it('needs kafka.schemaRegistry', async () => {
    const kafka = endpoints!;
    const test = createTestApp(kafka, 'archive-noreg', PARTITIONS);
    apps.push(test);
    const input = test.config({ instanceId: 'archive-1' }) as { kafka: Record<string, unknown> };
    const { schemaRegistry: _unused, ...kafkaSettings } = input.kafka;
    const config = parseConfig({ ...input, kafka: kafkaSettings, log: { level: 'silent' } });
    const error = await runArchive(config, { outDir: join(test.dir, 'archive'), maxFileBytes: 1024, raw: false, fromStart: false }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toContain('kafka.schemaRegistry');
  });
});
