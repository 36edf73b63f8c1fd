/**
 * Day-2 operations through the compiled CLI (docs/operations.md, docs/cli.md): what an operator sees
 * on /metrics of a running engine and from `consume --unseal` after a privacy key change.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, waitFor, startEngine as startEngineIn } from './helpers/cli-process.js';
import { ensureBuilt } from './helpers/dist.js';
import { EmbeddedLog } from '../engine/embedded/log.js';

const T0 = Date.UTC(2026, 0, 5, 9, 0, 0);
const PREDICTION = {
  requestId: 'ops-1',
  category: 'loan',
  features: { amount: 100 },
  attributes: { name: 'Customer One' },
  predictedLabel: 'approve',
  scores: { approve: 0.8, deny: 0.2 },
  modelVersion: '1.0.0',
  requestTimestamp: T0,
  timestamp: T0,
};

describe('day-2 operations', () => {
  const base = mkdtempSync(join(tmpdir(), 'sampleloop-ops-'));
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    await ensureBuilt();
  });

  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(base, { recursive: true, force: true });
  });

  const startEngine = (dataDir: string, env: Record<string, string> = {}): ReturnType<typeof startEngineIn> => startEngineIn(dataDir, children, env);

  it('exports sampleloop_consumer_lag on a scrape of /metrics alone, current with the log', async () => {
    const dataDir = join(base, 'lag');
    expect((await cli(['produce', 'predictions', '--data-dir', dataDir], { input: `${JSON.stringify(PREDICTION)}\n` })).code).toBe(0);
    const engine = await startEngine(dataDir);
    try {
      // No /healthz call and no maintenance run (every 60 s): the scrape itself must carry the lag.
      const lagLines = await waitFor('consumer lag on /metrics', async () => {
        const text = await (await fetch(`${engine.url}/metrics`)).text();
        const lines = text.split('\n').filter((l) => l.startsWith('sampleloop_consumer_lag{'));
        return lines.length > 0 ? lines : undefined;
      }, 5_000);
      expect(lagLines).toEqual(expect.arrayContaining([expect.stringMatching(/^sampleloop_consumer_lag\{topic="predictions",partition="0"\} \d+$/)]));
      // Once the prediction is processed, the next scrape says 0 (not a value left from start-up).
      const processed = await waitFor('lag 0', async () => {
        const text = await (await fetch(`${engine.url}/metrics`)).text();
        return text.includes('sampleloop_consumer_lag{topic="predictions",partition="0"} 0') ? true : undefined;
      });
      expect(processed).toBe(true);
    } finally {
      expect(await engine.stop()).toBe(0);
    }
  });

  it('consume --unseal with another privacy key marks the payloads it cannot open and exits 2 after printing', async () => {
    const dataDir = join(base, 'unseal');
    const keyA = 'a'.repeat(64);
    const keyB = 'b'.repeat(64);
    // produce seals the unparsable line on ingest, with the key the engine runs with
    expect((await cli(['produce', 'predictions', '--data-dir', dataDir], { input: '{"requestId": "ops-broken", "name": "Customer Two"\n', env: { SAMPLELOOP_PRIVACY_KEY: keyA } })).code).toBe(0);
    const engine = await startEngine(dataDir, { SAMPLELOOP_PRIVACY_KEY: keyA });
    await waitFor('a dead letter', async () => {
      const r = await cli(['consume', 'dead-letters', '--data-dir', dataDir]);
      return r.stdout.trim() !== '' ? true : undefined;
    });
    expect(await engine.stop()).toBe(0);

    const right = await cli(['consume', 'dead-letters', '--data-dir', dataDir, '--unseal'], { env: { SAMPLELOOP_PRIVACY_KEY: keyA } });
    expect(right.code).toBe(0);
    expect((JSON.parse(right.stdout.trim()) as { payloadUnsealed: string }).payloadUnsealed).toBe('{"requestId": "ops-broken", "name": "Customer Two"');

    const wrong = await cli(['consume', 'dead-letters', '--data-dir', dataDir, '--unseal'], { env: { SAMPLELOOP_PRIVACY_KEY: keyB } });
    expect(wrong.code).toBe(2);
    const printed = JSON.parse(wrong.stdout.trim()) as Record<string, unknown>;
    expect(printed.payloadUnsealed).toBeUndefined();
    expect(printed.payloadUnsealError).toMatch(/not sealed under the configured privacy key/);
    expect(wrong.stderr).toMatch(/^error \[SL_CONFIG\]: 1 sealed dead-letter payload\(s\) could not be unsealed/);
    expect(wrong.stdout + wrong.stderr).not.toContain('Customer Two');
  });

  it('refuses to run a data dir under another applicationId than the one that processed it (exit 2), instead of reading every input again', async () => {
    const dataDir = join(base, 'appid');
    expect((await cli(['produce', 'predictions', '--data-dir', dataDir], { input: `${JSON.stringify(PREDICTION)}\n` })).code).toBe(0);
    const engine = await startEngine(dataDir);
    await waitFor('the prediction processed', async () => {
      const health = (await (await fetch(`${engine.url}/healthz`)).json()) as { lag: Array<{ lag: number }> };
      return health.lag.every((l) => l.lag === 0) ? true : undefined;
    });
    expect(await engine.stop()).toBe(0);

    const renamed = await cli(['run', '--data-dir', dataDir, '--http-port', '0'], { env: { SAMPLELOOP__applicationId: 'loans-v2' } });
    expect(renamed.code).toBe(2);
    expect(renamed.stderr).toContain('error [SL_CONFIG]: applicationId: this data dir was processed as applicationId "sampleloop"');
    expect(renamed.stderr).toContain('Set applicationId back to "sampleloop", or use a new dataDir');
    // Nothing was reprocessed: no duplicate-prediction dead letter.
    const deadLetters = await cli(['consume', 'dead-letters', '--data-dir', dataDir]);
    expect(deadLetters.code).toBe(0);
    expect(deadLetters.stdout.trim()).toBe('');
  });

  it('refuses to generate a new privacy key in a data dir processed under the generated one that went missing (exit 2)', async () => {
    const dataDir = join(base, 'lostkey');
    expect((await cli(['produce', 'predictions', '--data-dir', dataDir], { input: `${JSON.stringify(PREDICTION)}\n` })).code).toBe(0);
    const engine = await startEngine(dataDir);
    const keyFile = join(dataDir, 'privacy.key');
    const key = readFileSync(keyFile, 'utf8');
    await waitFor('the prediction processed', async () => {
      const health = (await (await fetch(`${engine.url}/healthz`)).json()) as { lag: Array<{ lag: number }> };
      return health.lag.every((l) => l.lag === 0) ? true : undefined;
    });
    expect(await engine.stop()).toBe(0);

    rmSync(keyFile);
    const restarted = await cli(['run', '--data-dir', dataDir, '--http-port', '0']);
    expect(restarted.code).toBe(2);
    expect(restarted.stderr).toContain(`error [SL_CONFIG]: privacy key: ${dataDir} was processed with the key generated in ${keyFile}, which is missing`);
    expect(existsSync(keyFile)).toBe(false);
    // Given the key another way, it starts.
    const withEnv = await startEngine(dataDir, { SAMPLELOOP_PRIVACY_KEY: key.trim() });
    expect(await withEnv.stop()).toBe(0);
  });

  it('consume --unseal opens with the generated data-dir key and never creates one', async () => {
    const dataDir = join(base, 'unseal-generated');
    expect((await cli(['produce', 'predictions', '--data-dir', dataDir], { input: '{"requestId": "ops-gen", "name": "Customer Three"\n' })).code).toBe(0);
    const engine = await startEngine(dataDir);
    await waitFor('a dead letter', async () => ((await cli(['consume', 'dead-letters', '--data-dir', dataDir])).stdout.trim() !== '' ? true : undefined));
    expect(await engine.stop()).toBe(0);
    const opened = await cli(['consume', 'dead-letters', '--data-dir', dataDir, '--unseal']);
    expect(opened.code).toBe(0);
    expect((JSON.parse(opened.stdout.trim()) as { payloadUnsealed: string }).payloadUnsealed).toBe('{"requestId": "ops-gen", "name": "Customer Three"');

    const keyFile = join(dataDir, 'privacy.key');
    rmSync(keyFile);
    const noKey = await cli(['consume', 'dead-letters', '--data-dir', dataDir, '--unseal']);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toMatch(/^error \[SL_CONFIG\]: no privacy key/);
    expect(existsSync(keyFile)).toBe(false);
  });
});


describe('embedded.retentionMs', () => {
  it('deletes old records from non-compacted topics only; a compacted topic (samples) keeps its latest values', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sampleloop-retention-'));
    const log = await EmbeddedLog.open(dir);
    try {
      const now = Date.UTC(2026, 5, 1);
      const old = now - 10 * 60_000;
      log.ensureTopic('unmatched', { partitions: 1, compact: false, retentionMs: 60_000 });
      log.ensureTopic('samples', { partitions: 1, compact: true, retentionMs: 60_000 });
      // A data dir from before the rule: the topic was stored non-compacted with a retention, then upgraded.
      log.ensureTopic('legacy-samples', { partitions: 1, compact: false, retentionMs: 60_000 });
      log.ensureTopic('legacy-samples', { compact: true });
      const rec = (topic: string, key: string, timestamp: number) => ({ topic, key: Buffer.from(key), value: Buffer.from('{}'), timestamp, headers: {}, partition: 0 });
      log.append([rec('unmatched', 'a', old), rec('unmatched', 'b', now), rec('samples', 'a', old), rec('samples', 'b', old), rec('legacy-samples', 'a', old)]);

      expect(log.topic('samples')?.retentionMs).toBeNull();
      log.compact('samples');
      log.compact('legacy-samples');
      expect(log.enforceRetention(now)).toBe(1);
      expect(log.count('unmatched', 0)).toBe(1);
      expect(log.count('samples', 0)).toBe(2);
      expect(log.count('legacy-samples', 0)).toBe(1);
    } finally {
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
