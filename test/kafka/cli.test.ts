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
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
});
