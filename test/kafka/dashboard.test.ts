/** `sampleloop run` in Kafka mode (the compiled CLI) serves the dashboard: its counts, dead letters and the lag per input partition. */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT } from '../helpers/dist.js';
import { connectProducer, createTestApp, disconnect, kafkaEndpoints, produceKeyed, type TestApp } from './helpers.js';

const endpoints = kafkaEndpoints();
const PARTITIONS = 2;

async function poll<T>(what: string, read: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await read().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

describe.skipIf(endpoints === null)('dashboard in Kafka mode', () => {
  const apps: TestApp[] = [];
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    await ensureBuilt();
  });
  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    apps.forEach((a) => a.cleanup());
  });

  it('serves the page and the API with this instance\'s counts, dead letters and lag', async () => {
    const test = createTestApp(endpoints!, 'dashboard', PARTITIONS);
    apps.push(test);
    const file = join(test.dir, 'kafka.json');
    writeFileSync(file, JSON.stringify(test.config({ instanceId: 'dash-1' })));
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SAMPLELOOP')) env[k] = v;
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'sampleloop.js'), 'run', '--config', file], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const url = await poll('the engine\'s URL in its log', async () => /"url":"(http:\/\/[^"]+)"[^\n]*kafka mode/.exec(stderr)?.[1]);

    const now = Date.now();
    const prediction = (requestId: string, i: number): Record<string, unknown> => ({
      requestId,
      category: 'fraud',
      features: { amount: i },
      attributes: {},
      predictedLabel: 'legit',
      scores: { legit: 0.9, fraud: 0.1 },
      modelVersion: 'v1',
      requestTimestamp: now + i,
      timestamp: now + i,
    });
    const ids = ['k1', 'k2', 'k3', 'k4'];
    const producer = await connectProducer(endpoints!.bootstrap);
    try {
      await produceKeyed(producer, test.topics.predictions, PARTITIONS, ids.map((id, i) => ({ key: id, value: Buffer.from(JSON.stringify(prediction(id, i))), timestamp: now + i })));
      const feedback = [
        { requestId: 'k1', timestamp: now + 1000, source: 'ops', actualLabel: 'legit', correct: null },
        { requestId: 'k2', timestamp: now + 1000, source: 'ops', actualLabel: 'fraud', correct: null },
        { requestId: 'k3', timestamp: now + 1000, source: 'ops', actualLabel: null, correct: true },
      ];
      await produceKeyed(producer, test.topics.feedback, PARTITIONS, [
        ...feedback.map((f) => ({ key: f.requestId, value: Buffer.from(JSON.stringify(f)), timestamp: f.timestamp })),
        { key: 'k4', value: Buffer.from('{broken'), timestamp: now + 1000 },
      ]);
    } finally {
      await disconnect(producer);
    }

    const overview = await poll('the counts', async () => {
      const o = (await (await fetch(`${url}/api/v1/overview`)).json()) as { totals: { samples: number; deadLetters: number } };
      return o.totals.samples === 3 && o.totals.deadLetters === 1 ? o : undefined;
    });
    expect(overview).toMatchObject({ mode: 'kafka', totals: { predictions: 4, feedback: 4, samples: 3, matched: 3, deadLetters: 1, deadLettersByReason: { undecodable: 1 } } });
    const accuracy = (await (await fetch(`${url}/api/v1/series/accuracy`)).json()) as { current: unknown[] };
    expect(accuracy.current).toEqual([{ category: 'fraud', version: 'v1', confirmed: 2, corrected: 1, accuracy: 2 / 3 }]);
    const dead = (await (await fetch(`${url}/api/v1/dead-letters`)).json()) as { recent: Array<Record<string, unknown>> };
    expect(dead.recent).toEqual([expect.objectContaining({ reason: 'undecodable', topic: test.topics.feedback, partition: expect.any(Number), offset: expect.any(Number) })]);
    // Lag per input partition of this instance (0 once everything is fetched).
    const runtime = await poll('the lag series', async () => {
      const r = (await (await fetch(`${url}/api/v1/series/runtime`)).json()) as { lag: Record<string, Array<number | null>> };
      return Object.keys(r.lag).some((k) => k.startsWith(`${test.topics.predictions}/`)) ? r : undefined;
    });
    for (let p = 0; p < PARTITIONS; p++) expect(runtime.lag[`${test.topics.predictions}/${p}`]?.some((v) => v === 0)).toBe(true);
    expect(await (await fetch(`${url}/metrics`)).text()).toMatch(new RegExp(`sampleloop_consumer_lag\\{topic="${test.topics.feedback.replace(/\./g, '\\.')}",partition="\\d"\\} 0`));
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);

    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(child.exitCode).toBe(0);
  }, 240_000);
});
