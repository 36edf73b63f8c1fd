/**
 * `replay -d <data dir>` with SAMPLELOOP_PRIVACY_KEY set: the variable wins over the data dir's
 * privacy.key; when the two differ the replayed tokens cannot match the online samples, so replay
 * warns (naming both) instead of silently tokenizing with another key.
 */
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, jsonLines } from './helpers/cli-process.js';
import { ensureBuilt } from './helpers/dist.js';

const DATA_DIR_KEY = '11'.repeat(32);
const OTHER_KEY = '22'.repeat(32);
const T0 = Date.UTC(2026, 0, 5, 0, 0, 0);

describe('replay: a privacy key in the environment that differs from the data dir\'s privacy.key', () => {
  const work = mkdtempSync(join(tmpdir(), 'sampleloop-replay-key-'));
  const dataDir = join(work, 'data');
  const gateway = join(work, 'gateway.jsonl');
  const business = join(work, 'business.jsonl');

  beforeAll(async () => {
    mkdirSync(dataDir);
    writeFileSync(join(dataDir, 'privacy.key'), `${DATA_DIR_KEY}\n`, { mode: 0o600 });
    const prediction = { requestId: 'r-1', category: 'loan', features: { amount: 1 }, attributes: { name: 'Replay Person' }, predictedLabel: 'approve', scores: { approve: 0.9, deny: 0.1 }, modelVersion: '1', requestTimestamp: T0, timestamp: T0 };
    writeFileSync(gateway, `${JSON.stringify(prediction)}\n`);
    writeFileSync(business, `${JSON.stringify({ requestId: 'r-1', timestamp: T0 + 1000, actualLabel: 'approve' })}\n`);
    await ensureBuilt();
  }, 300_000);

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const replay = async (name: string, env: Record<string, string>): Promise<{ stderr: string; name: string }> => {
    const out = join(work, `${name}.jsonl`);
    const r = await cli(['replay', '-d', dataDir, '--gateway', gateway, '--business', business, '--out', `file:${out}`], { env });
    expect(r.code, r.stderr).toBe(0);
    const [sample] = jsonLines(readFileSync(out, 'utf8')) as Array<{ attributes: Record<string, string> }>;
    return { stderr: r.stderr, name: sample!.attributes.name! };
  };
  const token = (key: string): string => `tok_${createHmac('sha256', Buffer.from(key, 'hex')).update('name\u0000Replay Person', 'utf8').digest('base64url').slice(0, 22)}`;

  it('warns, naming the variable and the file, and tokenizes with the variable as before', async () => {
    const { stderr, name } = await replay('differs', { SAMPLELOOP_PRIVACY_KEY: OTHER_KEY });
    expect(name).toBe(token(OTHER_KEY));
    expect(stderr).toContain(`privacy key: replaying with the key from the environment variable SAMPLELOOP_PRIVACY_KEY, which differs from ${join(dataDir, 'privacy.key')}`);
    expect(stderr).toContain("replayed tokens will not match that data dir's online samples");
    expect(stderr).not.toContain(OTHER_KEY);
    expect(stderr).not.toContain(DATA_DIR_KEY);
  });

  it('says nothing when the two keys are the same, or when only the data dir has one', async () => {
    for (const [name, env] of [['same', { SAMPLELOOP_PRIVACY_KEY: DATA_DIR_KEY }], ['file-only', {}]] as const) {
      const r = await replay(name, env);
      expect(r.name).toBe(token(DATA_DIR_KEY));
      expect(r.stderr).not.toContain('privacy key:');
    }
  });
});
