/**
 * The CLI in Kafka mode: `run` ends with a clear error and the documented exit code when start-up
 * fails, instead of staying alive with the clients it had opened (an unreachable cluster: exit 1,
 * naming the address and the setting; joined topics with different partition counts: exit 2), and
 * `inspect` reports the cluster's real offsets and record counts.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaPartitionReader } from '../../engine/kafka/partition-reader.js';
import { HARNESS_PRIVACY_KEY } from '../helpers/engine-harness.js';
import { isSealed } from '../../processors/privacy.js';
import { KafkaAdmin } from '../../engine/kafka/admin.js';
import { silentLogger } from '../../engine/logger.js';
import { ensureBuilt, ROOT } from '../helpers/dist.js';
import { connectProducer, createTestApp, disconnect, kafkaEndpoints, produceKeyed, type TestApp } from './helpers.js';

const endpoints = kafkaEndpoints();

async function runCli(args: string[], timeoutMs: number): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SAMPLELOOP')) env[k] = v;
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'sampleloop.js'), ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stderr, stdout };
}

describe.skipIf(endpoints === null)('sampleloop CLI in Kafka mode', () => {
  const apps: TestApp[] = [];
  beforeAll(async () => {
    await ensureBuilt();
  });
  afterAll(() => apps.forEach((a) => a.cleanup()));

  it('an unreachable cluster: exit 1, naming the address and kafka.bootstrapServers', async () => {
    const test = createTestApp(endpoints!, 'cli-unreachable', 1);
    apps.push(test);
    const config = test.config({ instanceId: 'cli-1' });
    const file = join(test.dir, 'kafka.json');
    writeFileSync(file, JSON.stringify({ ...config, kafka: { ...config.kafka, bootstrapServers: '127.0.0.1:1' } }));
    const r = await runCli(['run', '--config', file], 90_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot reach the Kafka cluster at 127.0.0.1:1 (kafka.bootstrapServers)');
  }, 120_000);

  it('joined topics with different partition counts: exit 2 with the co-partitioning message', async () => {
    const test = createTestApp(endpoints!, 'cli-copartition', 2);
    apps.push(test);
    const producer = await connectProducer(endpoints!.bootstrap);
    try {
      // The engine creates missing topics with kafka.partitions (2); feedback exists already with 3.
      const admin = new KafkaAdmin({ 'bootstrap.servers': endpoints!.bootstrap }, silentLogger());
      try {
        await admin.ensureTopics([{ name: test.topics.feedback, partitions: 3, compact: false }], 1);
      } finally {
        admin.close();
      }
      await produceKeyed(producer, test.topics.feedback, 3, [{ key: 'x', value: Buffer.from('{}'), timestamp: Date.now() }]);
    } finally {
      await disconnect(producer);
    }
    const file = join(test.dir, 'kafka.json');
    writeFileSync(file, JSON.stringify(test.config({ instanceId: 'cli-2' })));
    const r = await runCli(['run', '--config', file], 90_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/co-partitioned topics need the same partition count/);
  }, 120_000);

  it('inspect reports partitions, end offsets and record counts read from the cluster, and says the cleanup policy is unknown', async () => {
    const test = createTestApp(endpoints!, 'cli-inspect', 2);
    apps.push(test);
    const admin = new KafkaAdmin({ 'bootstrap.servers': endpoints!.bootstrap }, silentLogger());
    try {
      await admin.ensureTopics([{ name: test.topics.predictions, partitions: 2, compact: false }], 1);
    } finally {
      admin.close();
    }
    const producer = await connectProducer(endpoints!.bootstrap);
    try {
      await produceKeyed(producer, test.topics.predictions, 2, Array.from({ length: 7 }, (_, i) => ({ key: `k-${i}`, value: Buffer.from('{}'), timestamp: Date.now() })));
    } finally {
      await disconnect(producer);
    }
    const file = join(test.dir, 'kafka.json');
    writeFileSync(file, JSON.stringify(test.config({ instanceId: 'cli-3' })));
    const r = await runCli(['inspect', '--json', '--config', file], 60_000);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { topics: Array<{ topic: string; partitions: number; records: number; endOffsets: number[]; compact: boolean | null }> };
    const topic = report.topics.find((t) => t.topic === test.topics.predictions);
    expect(topic).toMatchObject({ partitions: 2, records: 7, compact: null });
    expect(topic?.endOffsets.reduce((a, b) => a + b, 0)).toBe(7);
  }, 120_000);

  it('produce: a record the broker refuses exits 1 with the broker\'s reason (a line timestamp 2 h ahead: invalid timestamp)', async () => {
    const test = createTestApp(endpoints!, 'cli-produce', 1);
    apps.push(test);
    const file = join(test.dir, 'kafka.json');
    writeFileSync(file, JSON.stringify(test.config({ instanceId: 'cli-4' })));
    const lines = join(test.dir, 'feedback.jsonl');
    const now = Date.now();
    writeFileSync(lines, [{ requestId: 'f-1', timestamp: now + 2 * 3_600_000, correct: true }, { requestId: 'f-2', timestamp: now, correct: true }].map((l) => JSON.stringify(l)).join('\n'));
    const r = await runCli(['produce', test.topics.feedback, '--config', file, '--file', lines], 60_000);
    expect(r.code).toBe(1);
    // The broker refuses the whole batch of a partition, so the valid record may fail with it.
    expect(r.stderr).toMatch(/SL_KAFKA.*[12] of 2 record\(s\) could not be delivered: .*Invalid timestamp.*message\.timestamp\.after\.max\.ms/);
  }, 120_000);

  it('produce protects input records before they reach the cluster: tokens and masks, an unparsable line sealed', async () => {
    const test = createTestApp(endpoints!, 'cli-protect', 1);
    apps.push(test);
    const file = join(test.dir, 'kafka.json');
    writeFileSync(file, JSON.stringify(test.config({ instanceId: 'cli-5' })));
    const lines = join(test.dir, 'predictions.jsonl');
    const now = Date.now();
    const prediction = { requestId: 'k-1', category: 'loan', features: { amount: 1 }, attributes: { name: 'Kafka Person', phone: '+44 7700 900321' }, predictedLabel: 'approve', scores: { approve: 0.6, deny: 0.4 }, modelVersion: '1', requestTimestamp: now, timestamp: now };
    writeFileSync(lines, [JSON.stringify(prediction), 'not json, ID 555-44-3333'].join('\n'));
    const r = await runCli(['produce', test.topics.predictions, '--config', file, '--file', lines], 60_000);
    expect(r.code, r.stderr).toBe(0);
    const reader = await KafkaPartitionReader.open({ 'bootstrap.servers': endpoints!.bootstrap }, silentLogger(), `${test.run}-check`);
    try {
      const records = await reader.read(test.topics.predictions, 0, 0, 10);
      expect(records).toHaveLength(2);
      const stored = JSON.parse(records[0]!.value!.toString()) as { attributes: Record<string, string> };
      const token = `tok_${createHmac('sha256', HARNESS_PRIVACY_KEY).update('name\u0000Kafka Person', 'utf8').digest('base64url').slice(0, 22)}`;
      expect(stored.attributes).toEqual({ name: token, phone: '***********0321' });
      expect(isSealed(records[1]!.value!)).toBe(true);
      expect(records[1]!.headers['sampleloop.ingest.reason.code']).toBe('undecodable');
      const all = records.map((x) => x.value!.toString('latin1')).join('\n');
      for (const raw of ['Kafka Person', '900321', '555-44-3333']) expect(all).not.toContain(raw);
    } finally {
      await reader.close();
    }
  }, 120_000);
});
