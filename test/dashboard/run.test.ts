/** `sampleloop run` (the compiled CLI, embedded mode) serves the dashboard on its HTTP port, or only the metrics with dashboard.enabled false. */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, waitFor, startEngine as startEngineIn } from '../helpers/cli-process.js';
import { ensureBuilt } from '../helpers/dist.js';

const T0 = Date.UTC(2026, 0, 5, 9, 0, 0);
const prediction = (requestId: string): Record<string, unknown> => ({
  requestId,
  category: 'loan',
  features: { amount: 100 },
  attributes: {},
  predictedLabel: 'approve',
  scores: { approve: 0.8, deny: 0.2 },
  modelVersion: '1.0.0',
  requestTimestamp: T0,
  timestamp: T0,
});

describe('sampleloop run serves the dashboard', () => {
  const base = mkdtempSync(join(tmpdir(), 'sampleloop-dashboard-run-'));
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    await ensureBuilt();
  });
  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(base, { recursive: true, force: true });
  });

  const startEngine = (dataDir: string, env: Record<string, string> = {}): ReturnType<typeof startEngineIn> => startEngineIn(dataDir, children, env);

  async function produce(dataDir: string): Promise<void> {
    const predictions = ['a', 'b'].map((id) => JSON.stringify(prediction(id))).join('\n');
    expect((await cli(['produce', 'predictions', '--data-dir', dataDir], { input: `${predictions}\n` })).code).toBe(0);
    const feedback = [{ requestId: 'a', timestamp: T0 + 5000, source: 'crm', actualLabel: 'approve', correct: null }];
    expect((await cli(['produce', 'feedback', '--data-dir', dataDir], { input: `${feedback.map((f) => JSON.stringify(f)).join('\n')}\nnot json\n` })).code).toBe(0);
  }

  it('the page, its API with the engine\'s counts, and the live accuracy on /metrics', async () => {
    const dataDir = join(base, 'on');
    await produce(dataDir);
    const engine = await startEngine(dataDir);
    try {
      const overview = await waitFor('the counts on /api/v1/overview', async () => {
        const o = (await (await fetch(`${engine.url}/api/v1/overview`)).json()) as { totals: { samples: number; deadLetters: number } };
        return o.totals.samples === 1 && o.totals.deadLetters === 1 ? o : undefined;
      });
      expect(overview).toMatchObject({ mode: 'embedded', totals: { predictions: 2, feedback: 2, samples: 1, matched: 1, deadLetters: 1, deadLettersByReason: { undecodable: 1 } } });
      const page = await fetch(`${engine.url}/`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<title>sampleloop</title>');
      const dead = (await (await fetch(`${engine.url}/api/v1/dead-letters`)).json()) as { recent: unknown[] };
      expect(dead.recent).toEqual([expect.objectContaining({ reason: 'undecodable', topic: 'feedback', partition: expect.any(Number), offset: expect.any(Number) })]);
      expect(JSON.stringify(dead)).not.toContain('not json');
      const metrics = await (await fetch(`${engine.url}/metrics`)).text();
      expect(metrics).toContain('sampleloop_live_accuracy{category="loan",version="1.0.0"} 1');
      expect(metrics).toMatch(/sampleloop_label_delay_seconds_bucket\{le="5"\} 1/);
    } finally {
      expect(await engine.stop()).toBe(0);
    }
  });

  it('dashboard.enabled false: no page, the metrics stay', async () => {
    const dataDir = join(base, 'off');
    await produce(dataDir);
    const engine = await startEngine(dataDir, { SAMPLELOOP__dashboard__enabled: 'false' });
    try {
      await waitFor('a sample', async () => ((await (await fetch(`${engine.url}/metrics`)).text()).includes('sampleloop_live_accuracy{category="loan",version="1.0.0"} 1') ? true : undefined));
      expect((await fetch(`${engine.url}/`)).status).toBe(404);
      expect((await fetch(`${engine.url}/api/v1/overview`)).status).toBe(404);
    } finally {
      expect(await engine.stop()).toBe(0);
    }
  });
});
