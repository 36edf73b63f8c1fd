/**
 * Personal data at rest (issue 11, part 3): a workload with sensitive attributes goes in through every
 * embedded ingress of the compiled CLI (`produce` on the log directly before `run`, and `produce`
 * through the running engine's topic API), down every path (samples, unmatched, orphans, dead letters
 * of invalid and of unparsable lines carrying a phone and an ID number), and then EVERY byte of every
 * file in the data dir (RocksDB's SST, WAL, MANIFEST and LOG files, engine.json; privacy.key excepted)
 * is searched for each raw sensitive value and for the part of each masked value that masking hides.
 */
import type { ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, jsonLines, startCli, waitFor } from './helpers/cli-process.js';
import { ensureBuilt } from './helpers/dist.js';

const T0 = Date.UTC(2026, 0, 5, 9, 0, 0);
const MINUTE = 60_000;

interface Person {
  name: string;
  phone: string;
  idNumber: string;
  iban: string;
  email: string;
}

function person(n: number): Person {
  const d = String(1000 + n).slice(-3);
  return {
    name: `Ingrid Bergström-${n}`,
    phone: `+44 7700 900${d}`,
    idNumber: `9${d}-4${n % 10}-${String(6000 + n * 37).slice(-4)}`,
    iban: `DE89 3704 0044 0532 0130 ${d}`,
    email: `ingrid.${n}@bank.example`,
  };
}

/** Every string that must never be at rest: raw values, and the hidden part of masked ones. */
const forbidden = new Map<string, string>();

function remember(p: Person, what: string): void {
  for (const field of ['name', 'idNumber', 'iban'] as const) forbidden.set(p[field], `${what}: ${field}`);
  forbidden.set(p.phone, `${what}: phone`);
  forbidden.set(p.phone.slice(0, -4), `${what}: phone without its last 4`);
  forbidden.set(p.email, `${what}: email`);
  forbidden.set(p.email.slice(0, -3), `${what}: email without its last 3`);
}

function attributes(p: Person): Record<string, string> {
  return { name: p.name, phone: p.phone, idNumber: p.idNumber, iban: p.iban, email: p.email, channel: 'web' };
}

function prediction(requestId: string, p: Person, timestamp: number, overrides: Record<string, unknown> = {}): string {
  remember(p, requestId);
  return JSON.stringify({
    requestId,
    category: 'loan',
    features: { amount: 1200.5 },
    attributes: attributes(p),
    predictedLabel: 'approve',
    scores: { approve: 0.7, deny: 0.3 },
    modelVersion: '2.1.0',
    requestTimestamp: timestamp,
    timestamp,
    ...overrides,
  });
}

function feedback(requestId: string, timestamp: number, actualLabel: string): string {
  return JSON.stringify({ requestId, timestamp, actualLabel });
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path));
    else out.push(path);
  }
  return out;
}

describe('privacy at rest: no raw sensitive value in any byte of the data dir', () => {
  const base = mkdtempSync(join(tmpdir(), 'sampleloop-at-rest-'));
  const dataDir = join(base, 'data');
  const configFile = join(base, 'config.json');
  const children: ChildProcess[] = [];
  const people = Array.from({ length: 12 }, (_, i) => person(i + 1));
  const [p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12] = people as [Person, Person, Person, Person, Person, Person, Person, Person, Person, Person, Person, Person];
  /** Lines that cannot be parsed, with a phone and an ID number in them. */
  const unparsable = [`not json at all, call ${p5.phone} about ID ${p5.idNumber}`, `{"requestId": "cut-1", "attributes": {"name": "${p6.name}", "phone": "${p6.phone}"`];
  let env: Record<string, string>;

  beforeAll(async () => {
    await ensureBuilt();
    writeFileSync(
      configFile,
      JSON.stringify({
        dataDir,
        join: { beforeMs: MINUTE, afterMs: 10 * MINUTE, graceMs: MINUTE, idleAdvance: false },
        categories: { loan: { classes: ['approve', 'deny'], sensitive: [{ field: 'iban', action: 'tokenize' }, { field: 'email', action: 'mask', keepLast: 3 }] } },
        embedded: { maintenanceIntervalMs: 1000 },
      }),
    );
    env = { SAMPLELOOP_LOG_LEVEL: 'info' };
    forbidden.set(p5.phone, 'unparsable line: phone');
    forbidden.set(p5.idNumber, 'unparsable line: idNumber');
    forbidden.set(p6.name, 'cut line: name');
    forbidden.set(p6.phone, 'cut line: phone');

    // 1. produce on the log directly, before the engine runs (a fresh data dir: the key is generated now)
    const before = [
      prediction('m-1', p1, T0),
      prediction('m-2', p2, T0 + 1000),
      prediction('bad-1', p3, T0 + 2000, { features: { amount: 'lots' } }),
      prediction('bad-2', p4, T0 + 3000, { attributes: { ...attributes(p4), phone: 447700900004 } }),
      ...unparsable,
    ].join('\n');
    remember(p4, 'bad-2');
    forbidden.set('447700900004', 'bad-2: numeric phone');
    expect((await cli(['produce', 'predictions', '--config', configFile], { input: before, env })).code).toBe(0);
    expect((await cli(['produce', 'feedback', '--config', configFile], { input: [feedback('m-1', T0 + MINUTE, 'approve'), feedback('o-1', T0 + MINUTE, 'deny')].join('\n'), env })).code).toBe(0);
    const request = JSON.stringify({ requestId: 'q-1', category: 'loan', features: { amount: 1 }, attributes: attributes(p7), timestamp: T0 });
    remember(p7, 'q-1');
    expect((await cli(['produce', 'requests', '--config', configFile], { input: request, env })).code).toBe(0);

    // 2. the engine runs; produce goes through its topic API
    const engine = startCli(['run', '--config', configFile, '--http-port', '0'], env);
    children.push(engine);
    let stderr = '';
    engine.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    let stdout = '';
    engine.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    const exited = new Promise<number | null>((resolve) => engine.once('exit', (code) => resolve(code)));
    const info = await waitFor('engine.json', () => (existsSync(join(dataDir, 'engine.json')) ? (JSON.parse(readFileSync(join(dataDir, 'engine.json'), 'utf8')) as { url: string }) : undefined));
    const during = [prediction('m-3', p8, T0 + 4000), prediction('u-1', p9, T0 + 5000), `garbage ${p10.phone} ${p10.idNumber}`, prediction('m-4', p11, T0 + 6000)].join('\n');
    forbidden.set(p10.phone, 'garbage: phone');
    forbidden.set(p10.idNumber, 'garbage: idNumber');
    const viaHttp = await cli(['produce', 'predictions', '--config', configFile], { input: during, env });
    expect(viaHttp.code, viaHttp.stderr).toBe(0);
    // feedback that closes every window (stream time moves past them)
    const closingFeedback = [feedback('m-3', T0 + MINUTE, 'deny'), feedback('m-4', T0 + 2 * MINUTE, 'approve'), feedback('m-2', T0 + 2 * MINUTE, 'deny'), feedback('close', T0 + 60 * MINUTE, 'approve')];
    expect((await cli(['produce', 'feedback', '--config', configFile], { input: closingFeedback.join('\n'), env })).code).toBe(0);
    expect((await cli(['produce', 'predictions', '--config', configFile], { input: prediction('close', p12, T0 + 60 * MINUTE), env })).code).toBe(0);
    await waitFor('everything processed', async () => {
      const health = (await (await fetch(`${info.url}/healthz`)).json()) as { lag: Array<{ topic: string; lag: number }> };
      return health.lag.length > 0 && health.lag.every((l) => l.lag === 0) ? true : undefined;
    });
    engine.kill('SIGTERM');
    expect(await exited, stderr).toBe(0);
    // The engine's own log lines (dead letters at warn among them) hold no sensitive value either.
    const logText = stdout + stderr;
    expect([...forbidden.keys()].filter((v) => logText.includes(v))).toEqual([]);
    expect(logText).toContain('dead letter');
  }, 120_000);

  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(base, { recursive: true, force: true });
  });

  const consume = async (topic: string, extra: string[] = []): Promise<Array<Record<string, unknown>>> => {
    const r = await cli(['consume', topic, '--config', configFile, ...extra], { env });
    expect(r.code, r.stderr).toBe(0);
    return jsonLines(r.stdout);
  };

  it('went down every path: samples with the expected tokens (tokenized once), unmatched, orphans, dead letters with their reasons', async () => {
    const key = Buffer.from(readFileSync(join(dataDir, 'privacy.key'), 'utf8').trim(), 'hex');
    const token = (field: string, value: string): string => `tok_${createHmac('sha256', key).update(`${field}\u0000${value}`, 'utf8').digest('base64url').slice(0, 22)}`;
    const samples = await consume('samples');
    expect(samples.map((s) => `${String(s.requestId)}:${String(s.label)}`).sort()).toEqual(['close:approve', 'm-1:approve', 'm-2:deny', 'm-3:deny', 'm-4:approve']);
    const m1 = samples.find((s) => s.requestId === 'm-1') as { attributes: Record<string, string> };
    // Protected at ingest and again (idempotently) by the engine: the token of the raw value, not a token of a token.
    expect(m1.attributes).toEqual({
      name: token('name', p1.name),
      idNumber: token('idNumber', p1.idNumber),
      iban: token('iban', p1.iban),
      phone: `${'*'.repeat(p1.phone.length - 4)}${p1.phone.slice(-4)}`,
      email: `${'*'.repeat(p1.email.length - 3)}${p1.email.slice(-3)}`,
      channel: 'web',
    });
    expect((samples.find((s) => s.requestId === 'm-3') as { attributes: Record<string, string> }).attributes.name).toBe(token('name', p8.name));
    expect((await consume('unmatched')).map((u) => (u.prediction as { requestId: string }).requestId).sort()).toEqual(['u-1']);
    expect((await consume('orphans')).map((o) => (o.feedback as { requestId: string }).requestId)).toEqual(['o-1']);

    const deadLetters = await consume('dead-letters', ['--metadata', '--unseal']);
    const summary = deadLetters.map((d) => {
      const headers = d.headers as Record<string, string>;
      return `${String(d.key)}:${headers['sampleloop.dlq.reason.code']}:${headers['sampleloop.dlq.payload.encoding']}`;
    });
    expect(summary.sort()).toEqual(['bad-1:wrong-type:redacted', 'bad-2:wrong-type:sealed', 'null:undecodable:sealed', 'null:undecodable:sealed', 'null:undecodable:sealed']);
    // The sealed lines open to exactly what was produced (with the key), so nothing was lost.
    const unsealed = deadLetters.map((d) => (d.value as { payloadUnsealed?: string }).payloadUnsealed).filter((u): u is string => u !== undefined);
    expect(unsealed.sort()).toEqual([...unparsable, `garbage ${p10.phone} ${p10.idNumber}`, prediction('bad-2', p4, T0 + 3000, { attributes: { ...attributes(p4), phone: 447700900004 } })].sort());
    // The redacted dead letter is readable JSON with its attributes protected.
    const bad1 = deadLetters.find((d) => d.key === 'bad-1')!.value as { payload: string };
    expect((JSON.parse(bad1.payload) as { attributes: Record<string, string> }).attributes.name).toBe(token('name', p3.name));
  });

  it('the input topics hold the records protected (tokens and masks, unparsable lines sealed)', async () => {
    const requests = await consume('requests');
    expect((requests[0] as { attributes: Record<string, string> }).attributes.name).toMatch(/^tok_[A-Za-z0-9_-]{22}$/);
    const predictions = await consume('predictions', ['--metadata']);
    const sealed = predictions.filter((p) => (p.headers as Record<string, string>)['sampleloop.ingest.payload'] === 'sealed');
    expect(sealed.map((p) => (p.headers as Record<string, string>)['sampleloop.ingest.reason.code']).sort()).toEqual(['undecodable', 'undecodable', 'undecodable', 'wrong-type']);
  });

  it('scans every file of the data dir (SST, WAL, MANIFEST, LOG, ...; privacy.key excepted): 0 raw values', () => {
    expect(forbidden.size).toBeGreaterThan(60);
    const files = filesUnder(dataDir).filter((f) => relative(dataDir, f) !== 'privacy.key');
    const names = files.map((f) => relative(dataDir, f));
    expect(names.some((n) => /\.log$/.test(n))).toBe(true);
    expect(names.some((n) => /MANIFEST-/.test(n))).toBe(true);
    const hits: string[] = [];
    let bytes = 0;
    for (const file of files) {
      const content = readFileSync(file);
      bytes += statSync(file).size;
      for (const [value, why] of forbidden) if (content.includes(Buffer.from(value, 'utf8'))) hits.push(`${relative(dataDir, file)}: ${why}`);
    }
    expect(bytes).toBeGreaterThan(1000);
    expect(hits).toEqual([]);
  });
});

describe('run trims processed input; produce without a usable key', () => {
  const base = mkdtempSync(join(tmpdir(), 'sampleloop-at-rest-trim-'));
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    await ensureBuilt();
  }, 300_000);

  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(base, { recursive: true, force: true });
  });

  it('run deletes the input records every group has committed past, at its maintenance runs (embedded.inputRetentionMs = 0)', async () => {
    const dataDir = join(base, 'trim');
    const env = { SAMPLELOOP__embedded__maintenanceIntervalMs: '1000', SAMPLELOOP__embedded__inputRetentionMs: '0' };
    const p = person(1);
    const input = [prediction('t-1', p, T0), prediction('t-2', p, T0 + 1000)].join('\n');
    expect((await cli(['produce', 'predictions', '--data-dir', dataDir], { input, env })).code).toBe(0);
    expect((await cli(['produce', 'feedback', '--data-dir', dataDir], { input: feedback('t-1', T0 + MINUTE, 'deny'), env })).code).toBe(0);
    const engine = startCli(['run', '--data-dir', dataDir, '--http-port', '0'], env);
    children.push(engine);
    engine.stderr!.resume();
    const exited = new Promise<number | null>((resolve) => engine.once('exit', (code) => resolve(code)));
    await waitFor('engine.json', () => (existsSync(join(dataDir, 'engine.json')) ? true : undefined));
    const counts = async (): Promise<Record<string, { records: number; end: number }>> => {
      const r = await cli(['inspect', '--data-dir', dataDir, '--json']);
      const topics = (JSON.parse(r.stdout) as { topics: Array<{ topic: string; records: number; endOffsets: number[] }> }).topics;
      return Object.fromEntries(topics.map((t) => [t.topic, { records: t.records, end: t.endOffsets.reduce((a, b) => a + b, 0) }]));
    };
    const trimmed = await waitFor('processed input trimmed', async () => {
      const c = await counts();
      return c.predictions?.records === 0 && c.feedback?.records === 0 ? c : undefined;
    }, 30_000);
    expect(trimmed.predictions).toEqual({ records: 0, end: 2 });
    expect(trimmed.feedback).toEqual({ records: 0, end: 1 });
    expect(trimmed.samples).toEqual({ records: 1, end: 1 });
    engine.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 120_000);

  it('produce with an unusable key exits 2 saying why produce needs the key and how to turn ingest protection off', async () => {
    const r = await cli(['produce', 'predictions', '--data-dir', join(base, 'nokey')], { input: prediction('k-1', person(2), T0), env: { SAMPLELOOP_PRIVACY_KEY: 'abcd' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('error [SL_CONFIG]: the privacy key in environment variable SAMPLELOOP_PRIVACY_KEY is 2 bytes');
    expect(r.stderr).toContain("produce protects records of requests, predictions and feedback with the engine's privacy key before they are written");
    expect(r.stderr).toContain('set privacy.protectOnIngest to false');
    const off = await cli(['produce', 'predictions', '--data-dir', join(base, 'nokey')], { input: prediction('k-1', person(2), T0), env: { SAMPLELOOP_PRIVACY_KEY: 'abcd', SAMPLELOOP__privacy__protectOnIngest: 'false' } });
    expect(off.code, off.stderr).toBe(0);
  });
});
