import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import KafkaJavascript from '@confluentinc/kafka-javascript';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kafkaAvailable, startLocalKafka, type LocalKafka } from './harness.js';

const { Kafka, logLevel } = KafkaJavascript.KafkaJS;

const TOPIC = 'harness-roundtrip';
const RECORDS = 100;
const PARTITIONS = 3;

interface Received {
  partition: number;
  offset: number;
  key: string;
  value: string;
}

function expectedRecords(): Array<{ key: string; value: string }> {
  return Array.from({ length: RECORDS }, (_, i) => ({
    key: `key-${String(i).padStart(3, '0')}`,
    value: JSON.stringify({ seq: i, label: i % 2 === 0 ? 'even' : 'odd' }),
  }));
}

async function consumeAll(bootstrap: string, groupId: string, count: number, timeoutMs = 60_000): Promise<Received[]> {
  const kafka = new Kafka({ kafkaJS: { brokers: [bootstrap], logLevel: logLevel.NOTHING } });
  const consumer = kafka.consumer({ kafkaJS: { groupId, fromBeginning: true, autoCommit: false } });
  const received: Received[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [TOPIC] });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`consumed ${received.length}/${count} records within ${timeoutMs} ms`)),
        timeoutMs,
      );
      consumer
        .run({
          eachMessage: async ({ partition, message }) => {
            received.push({
              partition,
              offset: Number(message.offset),
              key: message.key?.toString('utf8') ?? '',
              value: message.value?.toString('utf8') ?? '',
            });
            if (received.length >= count) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return received;
}

function portAccepts(hostPort: string): Promise<boolean> {
  const [host, port] = hostPort.split(':');
  return new Promise((resolve) => {
    const socket = connect({ host: host!, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe.skipIf(!kafkaAvailable())('local Kafka + schema registry harness', () => {
  let local: LocalKafka;

  beforeAll(async () => {
    local = await startLocalKafka();
  }, 240_000);

  afterAll(async () => {
    await local?.stop();
  }, 120_000);

  it('starts a broker and a Confluent-compatible registry on loopback', () => {
    expect(local.bootstrap).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(local.registryUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/apis\/ccompat\/v7$/);
    expect(existsSync(`${local.runDir}/kafka-data/meta.properties`)).toBe(true);
  });

  it('creates a topic, produces 100 records and consumes them back in per-partition order', async () => {
    const kafka = new Kafka({ kafkaJS: { brokers: [local.bootstrap], logLevel: logLevel.NOTHING } });
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS, replicationFactor: 1 }] });
      expect(await admin.listTopics()).toContain(TOPIC);
    } finally {
      await admin.disconnect();
    }

    const producer = kafka.producer({ kafkaJS: { acks: -1 } });
    await producer.connect();
    try {
      await producer.send({ topic: TOPIC, messages: expectedRecords() });
    } finally {
      await producer.disconnect();
    }

    const received = await consumeAll(local.bootstrap, 'harness-group-1', RECORDS);
    const byKey = [...received].sort((a, b) => a.key.localeCompare(b.key));
    expect(byKey.map(({ key, value }) => ({ key, value }))).toEqual(expectedRecords());
    expect(new Set(received.map((r) => r.partition)).size).toBeGreaterThan(1);
    for (let p = 0; p < PARTITIONS; p++) {
      const offsets = received.filter((r) => r.partition === p).map((r) => r.offset);
      expect(offsets).toEqual(offsets.map((_, i) => i));
    }
  }, 120_000);

  it('registers an Avro schema and round-trips a record through the Confluent wire format', async () => {
    const registry = new SchemaRegistry({ host: local.registryUrl });
    const schema = {
      type: 'record',
      name: 'Prediction',
      namespace: 'dev.sampleloop.test',
      fields: [
        { name: 'requestId', type: 'string' },
        { name: 'score', type: 'double' },
        { name: 'features', type: { type: 'array', items: 'float' } },
      ],
    };
    const { id } = await registry.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(schema) },
      { subject: 'harness-predictions-value' },
    );
    expect(Number.isInteger(id)).toBe(true);

    const again = await registry.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(schema) },
      { subject: 'harness-predictions-value' },
    );
    expect(again.id).toBe(id);
    expect(await registry.getLatestSchemaId('harness-predictions-value')).toBe(id);

    const payload = { requestId: 'req-42', score: 0.875, features: [0.5, 1.25, -2] };
    const encoded = await registry.encode(id, payload);
    expect(encoded[0]).toBe(0);
    expect(encoded.readInt32BE(1)).toBe(id);
    expect(await registry.decode(encoded)).toEqual(payload);

    const subjects = (await (await fetch(`${local.registryUrl}/subjects`)).json()) as string[];
    expect(subjects).toContain('harness-predictions-value');
  }, 60_000);

  it('restartBroker keeps topics and records on disk', async () => {
    await local.restartBroker();
    const received = await consumeAll(local.bootstrap, 'harness-group-after-restart', RECORDS);
    expect(received.map((r) => r.key).sort()).toEqual(expectedRecords().map((r) => r.key));
  }, 180_000);

  it('stop() shuts both JVMs down and removes the temp run dir', async () => {
    const { bootstrap, registryUrl, runDir } = local;
    await local.stop();
    expect(await portAccepts(bootstrap)).toBe(false);
    expect(await portAccepts(new URL(registryUrl).host)).toBe(false);
    expect(existsSync(runDir)).toBe(false);
    await local.stop(); // idempotent
  }, 120_000);
});
