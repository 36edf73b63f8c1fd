/**
 * `sampleloop run` (the compiled CLI) with the gateway's security settings: a non-loopback host without
 * tokens exits 2; with `http.tokensFile`, the topic API refuses calls without the topics token, and the
 * CLI's own commands (produce, consume) reach the running engine with the file's token.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, jsonLines, startCli, waitFor } from './helpers/cli-process.js';
import { ensureBuilt } from './helpers/dist.js';

describe('run with the gateway\'s security settings', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sampleloop-gateway-cli-'));
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    await ensureBuilt();
  });
  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a non-loopback host without tokens (exit 2, naming the settings)', async () => {
    const file = join(dir, 'open.json');
    writeFileSync(file, JSON.stringify({ dataDir: join(dir, 'open'), http: { host: '0.0.0.0', port: 0 } }));
    const r = await cli(['run', '--config', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no http.tokensFile is configured');
    expect(r.stderr).toContain('http.allowUnauthenticated');
  });

  it('with tokens: the topic API needs the topics token, and produce / consume send it', async () => {
    const tokensFile = join(dir, 'tokens.json');
    writeFileSync(tokensFile, JSON.stringify({ topics: ['topics-token-abcdefghijkl'], infer: ['infer-token-abcdefghijkl'] }));
    const dataDir = join(dir, 'secured');
    const file = join(dir, 'secured.json');
    writeFileSync(file, JSON.stringify({ dataDir, http: { port: 0, tokensFile } }));
    const engine = startCli(['run', '--config', file]);
    children.push(engine);
    const exited = new Promise<number | null>((resolve) => engine.once('exit', resolve));
    const infoPath = join(dataDir, 'engine.json');
    const { url } = await waitFor('engine.json', () => (existsSync(infoPath) ? (JSON.parse(readFileSync(infoPath, 'utf8')) as { url: string }) : undefined));

    expect((await fetch(`${url}/topics`)).status).toBe(401);
    expect((await fetch(`${url}/topics`, { headers: { authorization: 'Bearer infer-token-abcdefghijkl' } })).status).toBe(401);
    const produced = await cli(['produce', 'feedback', '--config', file], { input: '{"requestId":"r-1","actualLabel":"x","timestamp":1767603600000}\n' });
    expect(produced.code, produced.stderr).toBe(0);
    expect(jsonLines(produced.stdout)).toEqual([{ topic: 'feedback', appended: 1 }]);
    const consumed = await cli(['consume', 'feedback', '--config', file]);
    expect(consumed.code, consumed.stderr).toBe(0);
    // ingest protection stores the decoded record (the schema's defaults filled in), as produce without an engine does
    expect(jsonLines(consumed.stdout)).toEqual([{ requestId: 'r-1', actualLabel: 'x', timestamp: 1767603600000, source: '', correct: null }]);

    engine.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
