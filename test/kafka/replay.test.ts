/**
 * `replay --out kafka`: the replay's outputs are produced to the configured cluster's topics — samples
 * keyed by request ID in the partition of their key, Avro registered in the cluster's registry —
 * with the same content as a replay to a file, and a second run produces the same keys and values.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/config.js';
import { partitionForKey } from '../../engine/partitioner.js';
import { runReplay } from '../../replay/topology.js';
import { createTestApp, kafkaEndpoints, readTopic, type TestApp } from './helpers.js';

const endpoints = kafkaEndpoints();
const PARTITIONS = 2;
const T0 = Date.now() - 2 * 24 * 3600_000;

function lines(values: readonly object[]): string {
  return values.map((v) => JSON.stringify(v)).join('\n') + '\n';
}

function writeArchive(dir: string): { gateway: string; business: string } {
  const predictions = Array.from({ length: 40 }, (_, i) => ({
    requestId: `kr-${String(i).padStart(3, '0')}`,
    category: 'fraud',
    features: { amount: i + 0.5 },
    attributes: { name: `Customer ${i}`, channel: 'web' },
    predictedLabel: i % 3 === 0 ? 'fraud' : 'legit',
    scores: { fraud: 0.4, legit: 0.6 },
    modelVersion: '1.0.0',
    requestTimestamp: T0 + i * 1000 - 3,
    timestamp: T0 + i * 1000,
  }));
  const feedback = [
    ...predictions.filter((_, i) => i % 4 !== 0).map((p, i) => ({ requestId: p.requestId, timestamp: p.timestamp + 5000, actualLabel: i % 5 === 0 ? 'fraud' : p.predictedLabel })),
    { requestId: 'kr-ghost', timestamp: T0 + 7000, correct: true },
  ].sort((a, b) => a.timestamp - b.timestamp);
  const gateway = join(dir, 'gateway.jsonl');
  const business = join(dir, 'business.jsonl');
  writeFileSync(gateway, lines(predictions));
  writeFileSync(business, lines(feedback));
  return { gateway, business };
}

describe.skipIf(endpoints === null)('replay --out kafka', () => {
  const apps: TestApp[] = [];
  afterAll(() => apps.forEach((a) => a.cleanup()));

  it('produces the outputs to the cluster, keyed and partitioned by request ID, the same as a file replay, idempotently', async () => {
    const kafka = endpoints!;
    const test = createTestApp(kafka, 'replay', PARTITIONS);
    apps.push(test);
    const config = parseConfig({ ...test.config({ instanceId: 'replay-1' }), log: { level: 'silent' } });
    const archive = writeArchive(mkdtempSync(join(tmpdir(), 'sampleloop-kafka-replay-')));
    const request = { config, gateway: [archive.gateway], business: [archive.business] };

    const fileOut = join(test.dir, 'samples.jsonl');
    const reference = await runReplay({ ...request, out: `file:${fileOut}` });
    const first = await runReplay({ ...request, out: 'kafka' });
    expect(first.outputs.samples).toBe(`kafka topic ${test.topics.samples}`);
    expect(first.rejectsFile).toBe(join(config.dataDir, 'replay-rejects.jsonl'));
    expect(first.written).toEqual(reference.written);
    expect(first.written).toMatchObject({ samples: 30, unmatched: 10, orphans: 1 });

    const registry = new SchemaRegistry({ host: kafka.registryUrl });
    const expected = readFileSync(fileOut, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { requestId: string });
    const read = async (): Promise<Array<{ key: string; partition: number; value: Buffer; sample: unknown }>> => {
      const messages = await readTopic(kafka.bootstrap, test.topics.samples, PARTITIONS, { readCommitted: true });
      const out = [];
      for (const m of messages) out.push({ key: (m.key as Buffer).toString('utf8'), partition: m.partition, value: m.value as Buffer, sample: JSON.parse(JSON.stringify(await registry.decode(m.value as Buffer))) as unknown });
      return out.sort((a, b) => a.key.localeCompare(b.key));
    };
    const produced = await read();
    expect(produced.map((m) => m.key)).toEqual(expected.map((s) => s.requestId));
    expect(produced.map((m) => m.sample)).toEqual(expected);
    for (const m of produced) expect(m.partition).toBe(partitionForKey(Buffer.from(m.key), PARTITIONS));
    const unmatched = await readTopic(kafka.bootstrap, test.topics.unmatched, PARTITIONS, { readCommitted: true });
    expect(unmatched).toHaveLength(10);

    // Again: every key gets the same value once more, so the compacted topic keeps the same samples.
    const second = await runReplay({ ...request, out: 'kafka' });
    expect(second.written).toEqual(first.written);
    const twice = await read();
    expect(twice).toHaveLength(2 * produced.length);
    const byKey = new Map<string, Buffer[]>();
    for (const m of twice) byKey.set(m.key, [...(byKey.get(m.key) ?? []), m.value]);
    for (const [, values] of byKey) {
      expect(values).toHaveLength(2);
      expect((values[0] as Buffer).equals(values[1] as Buffer)).toBe(true);
    }
  });
});
