/**
 * `sampleloop replay` / `archive` as a user runs them (the compiled CLI in dist/, rebuilt when stale):
 * exit codes, summary on stdout, progress on stderr, and a replay of an archive several times larger
 * than the heap under `node --max-old-space-size=64`.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { createReadStream } from 'node:fs';
import { createGzip, constants as zlib } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from './helpers/dist.js';
import { HARNESS_PRIVACY_KEY, protectAsDocumented } from './helpers/engine-harness.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'sampleloop.js');
const T0 = Date.UTC(2026, 0, 5, 0, 0, 0);

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SAMPLELOOP')) env[k] = v;
  return env;
}

async function cli(args: readonly string[], nodeArgs: readonly string[] = []): Promise<CliResult> {
  const child = spawn(process.execPath, [...nodeArgs, BIN, ...args], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

let work: string;
let dataDir: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'sampleloop-replay-cli-'));
  dataDir = join(work, 'data');
  mkdirSync(dataDir);
  // The engine's generated key, where replay looks for it.
  writeFileSync(join(dataDir, 'privacy.key'), `${HARNESS_PRIVACY_KEY.toString('hex')}\n`, { mode: 0o600 });
  await ensureBuilt();
}, 300_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function prediction(i: number, padding = ''): Record<string, unknown> {
  const t = T0 + i * 1000;
  return {
    requestId: `r-${String(i).padStart(7, '0')}`,
    category: 'fraud',
    features: { amount: (i % 1000) / 7, hour: i % 24, velocity: (i * 13) % 17, age: 18 + (i % 60) },
    attributes: { name: `Customer ${i}`, phone: `+44 7700 900${String(i % 1000).padStart(3, '0')}`, channel: i % 2 ? 'web' : 'app' },
    predictedLabel: i % 4 === 0 ? 'fraud' : 'legit',
    scores: { fraud: i % 4 === 0 ? 0.7 : 0.3, legit: i % 4 === 0 ? 0.3 : 0.7 },
    modelVersion: '2.0.1',
    requestTimestamp: t - 3,
    timestamp: t,
    ...(padding ? { rawRequest: padding } : {}),
  };
}

describe('sampleloop replay (CLI)', () => {
  let archive: string;

  beforeAll(() => {
    archive = join(work, 'small');
    mkdirSync(archive);
    const lines = Array.from({ length: 20 }, (_, i) => JSON.stringify(prediction(i)));
    lines.splice(5, 0, '{"requestId": 42}');
    writeFileSync(join(archive, 'gateway.jsonl'), `${lines.join('\n')}\n`);
    const feedback = Array.from({ length: 20 }, (_, i) => `r-${String(i).padStart(7, '0')},${T0 + i * 1000 + 500},${i % 4 === 0 ? 'fraud' : 'legit'}`);
    writeFileSync(join(archive, 'business.csv'), `id,at,label\n${feedback.join('\n')}\n`);
  });

  const args = (out: string): string[] => [
    'replay',
    '--data-dir',
    dataDir,
    '--gateway',
    join(archive, 'gateway.jsonl'),
    '--business',
    join(archive, 'business.csv'),
    '--map',
    'business.requestId=id,business.timestamp=at,business.actualLabel=label',
    '--out',
    `file:${out}`,
  ];

  it('prints the summary on stdout and exits 0 when bad lines were only reported', async () => {
    const out = join(work, 'cli-ok.jsonl');
    const result = await cli([...args(out), '--progress']);
    expect(result.stderr).toMatch(/replay 1\/2 reading \+ joining · 100\.0% .* done in/);
    expect(result.stderr).toMatch(/replay 2\/2 writing · 100\.0% · 20\/20 · 20 records/);
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout) as { rejected: number; written: { samples: number }; rejectedByReason: Record<string, number> };
    expect(summary.rejected).toBe(1);
    expect(summary.rejectedByReason).toEqual({ 'wrong-type': 1 });
    expect(summary.written.samples).toBe(20);
  });

  it('SIGINT stops a replay cleanly: exit 1, no output, temporary directory removed', async () => {
    const big = join(work, 'interrupted');
    mkdirSync(big);
    await writeGzipLines(join(big, 'gateway.jsonl.gz'), 30_000, (i) => JSON.stringify(prediction(i)));
    const temp = join(work, 'interrupted-temp');
    mkdirSync(temp);
    const out = join(big, 'out.jsonl');
    const child = spawn(process.execPath, [BIN, 'replay', '-d', dataDir, '--gateway', join(big, 'gateway.jsonl.gz'), '--out', `file:${out}`, '--temp-dir', temp, '--progress'], {
      cwd: ROOT,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let interrupted = false;
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString('utf8');
      // Once: a second SIGINT is not caught (it force-stops, as a second Ctrl-C should).
      if (!interrupted && stderr.includes('replay 1/2 reading')) {
        interrupted = true;
        child.kill('SIGINT');
      }
    });
    const [code] = (await once(child, 'close')) as [number | null];
    expect(code).toBe(1);
    expect(stderr).toContain('error [SL_CLOSED]: replay interrupted');
    expect(readdirSync(temp)).toEqual([]);
    expect(existsSync(out)).toBe(false);
  });

  it('--strict exits 1 at the first bad line, naming file and line', async () => {
    const result = await cli([...args(join(work, 'cli-strict.jsonl')), '--strict']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`error [SL_VALIDATION]: ${join(archive, 'gateway.jsonl')}:6: requestId must be a string`);
    expect(existsSync(join(work, 'cli-strict.jsonl'))).toBe(false);
  });

  it('--out kafka without a configured cluster exits 2 naming every missing setting', async () => {
    const result = await cli([...args('x').slice(0, -1), 'kafka']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--out kafka needs kafka.bootstrapServers');
    expect(result.stderr).toContain('and kafka.schemaRegistry.url');
  });

  it('refuses (exit 2) an output that would overwrite one of its inputs, leaving the input as it was', async () => {
    const input = join(archive, 'gateway.jsonl');
    const before = readFileSync(input);
    for (const extra of [['--out', `file:${input}`], ['--out', `file:${join(work, 'elsewhere.jsonl')}`, '--rejects', input]]) {
      const result = await cli(['replay', '--data-dir', dataDir, '--gateway', input, ...extra]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`replay would overwrite its input ${input}`);
    }
    expect(readFileSync(input)).toEqual(before);
  });

  it('a bad --since is a usage error', async () => {
    const result = await cli([...args(join(work, 'x.jsonl')), '--since', 'last tuesday']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--since must be ISO-8601');
  });
});

describe('sampleloop archive, then replay --out embedded (CLI)', () => {
  it('archives a data dir and rebuilds its samples into another one', async () => {
    const source = join(work, 'source-data');
    mkdirSync(source);
    writeFileSync(join(source, 'privacy.key'), `${HARNESS_PRIVACY_KEY.toString('hex')}\n`, { mode: 0o600 });
    const predictions = join(work, 'p.jsonl');
    const feedback = join(work, 'f.jsonl');
    writeFileSync(predictions, Array.from({ length: 6 }, (_, i) => JSON.stringify(prediction(i))).join('\n'));
    writeFileSync(feedback, [0, 1, 2, 3].map((i) => JSON.stringify({ requestId: `r-${String(i).padStart(7, '0')}`, timestamp: T0 + i * 1000 + 200, actualLabel: 'legit' })).join('\n'));
    expect((await cli(['produce', 'predictions', '-d', source, '-f', predictions])).code).toBe(0);
    expect((await cli(['produce', 'feedback', '-d', source, '-f', feedback])).code).toBe(0);

    const archiveDir = join(work, 'cli-archive');
    const archived = await cli(['archive', '-d', source, '--out-dir', archiveDir]);
    expect(archived.code).toBe(0);
    expect(JSON.parse(archived.stdout)).toMatchObject({ records: { gateway: 6, business: 4, requests: 0 }, missingTopics: ['requests'] });
    expect(readdirSync(archiveDir).sort()).toEqual(['archive-manifest.json', 'business-000001.jsonl.gz', 'gateway-000001.jsonl.gz']);

    const target = join(work, 'target-data');
    const replayed = await cli(['replay', '-d', source, '--gateway', join(archiveDir, 'gateway-*.jsonl.gz'), '--business', join(archiveDir, 'business-*.jsonl.gz'), '--out', `embedded:${target}`]);
    expect(replayed.stderr).toBe('');
    expect(replayed.code).toBe(0);
    expect(JSON.parse(replayed.stdout)).toMatchObject({ written: { samples: 4, unmatched: 2 } });
    const consumed = await cli(['consume', 'samples', '-d', target]);
    const samples = consumed.stdout.trim().split('\n').map((l) => JSON.parse(l) as { requestId: string; label: string; origin: string; attributes: Record<string, string> });
    expect(samples.map((s) => [s.requestId, s.label, s.origin])).toEqual([0, 1, 2, 3].map((i) => [`r-${String(i).padStart(7, '0')}`, 'legit', 'replay']));
    // The target had no key of its own: replay used the key of the engine given with -d and left a copy
    // in the target, so an engine started there tokenizes online records with the same key.
    expect(samples[0]?.attributes.name).toBe(protectAsDocumented({ name: 'Customer 0' }).name);
    expect(readFileSync(join(target, 'privacy.key'))).toEqual(readFileSync(join(source, 'privacy.key')));
    expect(statSync(join(target, 'privacy.key')).mode & 0o777).toBe(0o600);
  });
});

describe('replay of an archive larger than the heap', () => {
  const PREDICTIONS = 60_000;
  // Gateway logs carry the raw request next to the prediction: the archive is large, the records the join keeps are not.
  const PADDING = 'x'.repeat(3400);

  it('completes under node --max-old-space-size=64 with correct counts', async () => {
    const archive = join(work, 'large');
    mkdirSync(archive);
    const gatewayBytes = await writeGzipLines(join(archive, 'gateway.jsonl.gz'), PREDICTIONS, (i) => JSON.stringify(prediction(i, PADDING)));
    // Feedback 20 h after its prediction: every prediction is still held in the join window when the first feedback arrives.
    const withFeedback = (i: number): boolean => i % 10 !== 0;
    await writeGzipLines(join(archive, 'business.jsonl.gz'), PREDICTIONS, (i) =>
      withFeedback(i) ? JSON.stringify({ requestId: `r-${String(i).padStart(7, '0')}`, timestamp: T0 + i * 1000 + 20 * 3600_000, correct: true }) : null,
    );
    expect(gatewayBytes).toBeGreaterThan(3 * 64 * 1024 * 1024);

    const out = join(work, 'large-samples.jsonl');
    const result = await cli(
      ['replay', '--data-dir', dataDir, '--gateway', join(archive, 'gateway.jsonl.gz'), '--business', join(archive, 'business.jsonl.gz'), '--out', `file:${out}`, '--no-progress'],
      ['--max-old-space-size=64'],
    );
    expect(result.stderr).not.toMatch(/heap out of memory/i);
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout) as { staged: { predictions: number; feedback: number }; written: Record<string, number>; rejected: number };
    const expectedSamples = PREDICTIONS - PREDICTIONS / 10;
    expect(summary.rejected).toBe(0);
    expect(summary.staged).toEqual({ predictions: PREDICTIONS, feedback: expectedSamples });
    expect(summary.written).toEqual({ samples: expectedSamples, unmatched: PREDICTIONS / 10, orphans: 0, late: 0, review: 0, deadLetters: 0 });
    expect(await countLines(out)).toBe(expectedSamples);
  }, 600_000);
});

/** Writes `count` lines (null = skip) through gzip; returns the uncompressed bytes. */
async function writeGzipLines(path: string, count: number, line: (i: number) => string | null): Promise<number> {
  const gzip = createGzip({ level: zlib.Z_BEST_SPEED });
  const file = createWriteStream(path);
  gzip.pipe(file);
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const text = line(i);
    if (text === null) continue;
    bytes += text.length + 1;
    if (!gzip.write(`${text}\n`)) await once(gzip, 'drain');
  }
  gzip.end();
  await once(file, 'finish');
  return bytes;
}

async function countLines(path: string): Promise<number> {
  let n = 0;
  for await (const line of createInterface({ input: createReadStream(path) })) if (line.length > 0) n++;
  return n;
}
