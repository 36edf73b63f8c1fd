/**
 * `produce` through a running engine's topic API when the engine is killed (kill -9) mid-request: the
 * CLI must not end with a bare "fetch failed" but say that nothing was appended (an append is all or
 * nothing) and that re-running is safe, with the end offsets to check it by; and that must be true.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, startCli, waitFor } from './helpers/cli-process.js';
import { ensureBuilt } from './helpers/dist.js';
import { EmbeddedLog } from '../engine/embedded/log.js';

const T0 = Date.UTC(2026, 0, 5, 9, 0, 0);
const LINES = 80_000;

function lines(): string {
  const out: string[] = [];
  for (let i = 0; i < LINES; i++) {
    out.push(
      JSON.stringify({
        requestId: `c-${i}`,
        category: 'loan',
        features: { amount: i },
        attributes: { name: `Crash Person ${i}`, phone: `+44 7700 ${String(100000 + i)}`, channel: 'web' },
        predictedLabel: 'approve',
        scores: { approve: 0.6, deny: 0.4 },
        modelVersion: '1',
        requestTimestamp: T0 + i,
        timestamp: T0 + i,
      }),
    );
  }
  return `${out.join('\n')}\n`;
}

describe('produce through a running engine that is killed mid-request', () => {
  const base = mkdtempSync(join(tmpdir(), 'sampleloop-http-crash-'));
  const dataDir = join(base, 'data');
  const children: ChildProcess[] = [];
  const env = { SAMPLELOOP_PRIVACY_KEY: 'cd'.repeat(32) };

  beforeAll(async () => {
    await ensureBuilt();
  }, 300_000);

  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(base, { recursive: true, force: true });
  });

  it('says how many records were appended before the cut (none of the cut piece), and re-running the rest appends every record once', async () => {
    const engine = startCli(['run', '--data-dir', dataDir, '--http-port', '0'], env);
    children.push(engine);
    engine.stderr!.resume();
    engine.stdout!.resume();
    const exited = new Promise<void>((resolve) => engine.once('exit', () => resolve()));
    await waitFor('engine.json', () => (existsSync(join(dataDir, 'engine.json')) ? true : undefined));
    const input = lines();
    const bytesRead = (): number => Number(/^rchar: (\d+)$/m.exec(readFileSync(`/proc/${engine.pid}/io`, 'utf8'))?.[1] ?? 0);
    const idle = bytesRead();
    const producing = cli(['produce', 'predictions', '--data-dir', dataDir], { input, env, timeoutMs: 120_000 });
    // The engine reads the whole request, then protects every record, then appends them in one write:
    // kill it once it has read most of the request (its read-bytes counter), long before that write.
    const deadline = Date.now() + 60_000;
    while (bytesRead() - idle < input.length / 2 && Date.now() < deadline) await sleep(2);
    engine.kill('SIGKILL');
    await exited;
    const r = await producing;
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).not.toMatch(/^error[^\n]*: fetch failed\s*$/m);
    expect(r.stderr).toMatch(/^error \[SL_LOG\]: the (connection to the running engine at http:\/\/127\.0\.0\.1:\d+ broke before it answered|running engine at http:\/\/127\.0\.0\.1:\d+ did not answer)/m);
    expect(r.stderr).not.toContain('Crash Person');
    // Input goes in pieces of about 4 MiB, each appended all or nothing: the message says how many
    // records were confirmed before the cut, and the data dir holds exactly those.
    const confirmed = Number(/The first (\d+) record\(s\) were appended and confirmed/.exec(r.stderr)?.[1] ?? 0);
    if (confirmed === 0) expect(r.stderr).toMatch(/Nothing was appended unless the engine wrote the whole batch|nothing was sent, nothing appended/);
    else expect(r.stderr).toMatch(new RegExp(`Re-run with only the lines after the first ${confirmed}`));
    const log = await EmbeddedLog.open(join(dataDir, 'log'));
    try {
      expect(log.topic('predictions') === undefined ? 0 : log.endOffset('predictions', 0)).toBe(confirmed);
    } finally {
      await log.close();
    }
    // Re-running the rest (the engine is gone: produce writes to the data dir directly) appends every record exactly once.
    const rest = input.split('\n').slice(confirmed).join('\n');
    const again = await cli(['produce', 'predictions', '--data-dir', dataDir], { input: rest, env, timeoutMs: 120_000 });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout.trim())).toEqual({ topic: 'predictions', appended: LINES - confirmed });
    const reopened = await EmbeddedLog.open(join(dataDir, 'log'));
    try {
      expect(reopened.endOffset('predictions', 0)).toBe(LINES);
      const keys = reopened.read('predictions', 0, 0, LINES).map((rec) => rec.key!.toString());
      expect(keys).toEqual(Array.from({ length: LINES }, (_, i) => `c-${i}`));
    } finally {
      await reopened.close();
    }
  }, 240_000);
});
