/**
 * End-to-end tests of `node bin/sampleloop.js` (the compiled CLI in dist/, rebuilt when stale):
 * help, produce → run → consume through the running engine's HTTP API, /healthz and /metrics,
 * dead letters, SIGTERM, inspect, configuration errors and the demo.
 */
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, jsonLines, startCli, waitFor } from './helpers/cli-process.js';
import { ensureBuilt, ROOT } from './helpers/dist.js';

// ---------------------------------------------------------------------------------------------
// dist/ must be current: bin/sampleloop.js runs the compiled CLI.

// ---------------------------------------------------------------------------------------------
// Input.

const T0 = Date.UTC(2026, 0, 5, 9, 0, 0);

function prediction(n: number): Record<string, unknown> {
  return {
    requestId: `cli-${n}`,
    category: 'loan',
    features: { amount: 100 * n, tenure: n },
    attributes: { name: `Customer Number${n}`, phone: `+44 7700 900${String(100 + n)}`, idNumber: `ID-77${n}123`, channel: 'web' },
    predictedLabel: n % 2 === 0 ? 'approve' : 'deny',
    scores: { approve: n % 2 === 0 ? 0.8 : 0.2, deny: n % 2 === 0 ? 0.2 : 0.8 },
    modelVersion: '3.0.0',
    requestTimestamp: T0 + n * 1000,
    timestamp: T0 + n * 1000,
  };
}

const PREDICTIONS = [1, 2, 3, 4, 5].map(prediction);
/** Feedback for requests 1–4; 5 stays unmatched. Request 3 is corrected. */
const FEEDBACK = [
  { requestId: 'cli-1', timestamp: T0 + 61_000, actualLabel: 'deny' },
  { requestId: 'cli-2', timestamp: T0 + 62_000, correct: true },
  { requestId: 'cli-3', timestamp: T0 + 63_000, actualLabel: 'approve' },
  { requestId: 'cli-4', timestamp: T0 + 64_000, actualLabel: 'approve' },
];
const EXPECTED_LABELS = { 'cli-1': 'deny', 'cli-2': 'approve', 'cli-3': 'approve', 'cli-4': 'approve' };
const MALFORMED = '{"requestId": "cli-broken", "timestamp": ';

// ---------------------------------------------------------------------------------------------

describe('sampleloop CLI (node bin/sampleloop.js)', () => {
  const base = mkdtempSync(join(tmpdir(), 'sampleloop-cli-'));
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    await ensureBuilt();
  });

  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(base, { recursive: true, force: true });
  });

  it('prints help for the program and every command', async () => {
    const expectations: Array<[string[], string[]]> = [
      [['--help'], ['run', 'produce', 'consume', 'inspect', 'demo']],
      [['run', '--help'], ['--http-port', '--data-dir', '--config']],
      [['produce', '--help'], ['<topic>', '--file', '--key-field', '--partitions']],
      [['consume', '--help'], ['<topic>', '--from', '--max', '--metadata']],
      [['inspect', '--help'], ['--json', '--data-dir']],
      [['demo', '--help'], ['--requests', '--seed', '--quiet']],
    ];
    const results = await Promise.all(expectations.map(([args]) => cli(args)));
    results.forEach((result, i) => {
      const [args, words] = expectations[i]!;
      expect(result.code, args.join(' ')).toBe(0);
      expect(result.stdout).toMatch(/^Usage: sampleloop/);
      for (const word of words) expect(result.stdout, `${args.join(' ')} mentions ${word}`).toContain(word);
    });
    const version = await cli(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toBe((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  });

  it('produce warns when it creates a topic the engine does not read (a mistyped name), and only then', async () => {
    const dataDir = join(base, 'typo');
    const line = JSON.stringify({ requestId: 'r-typo', timestamp: T0, correct: true });
    const typo = await cli(['produce', 'feedbak', '--data-dir', dataDir], { input: line });
    expect(typo.code, typo.stderr).toBe(0);
    expect(jsonLines(typo.stdout)).toEqual([{ topic: 'feedbak', appended: 1 }]);
    expect(typo.stderr).toContain('warning: topic "feedbak" did not exist and was created; the engine reads "requests", "predictions", "feedback"');
    const again = await cli(['produce', 'feedbak', '--data-dir', dataDir], { input: line });
    expect(again.code).toBe(0);
    expect(again.stderr).not.toContain('warning');
    const input = await cli(['produce', 'feedback', '--data-dir', dataDir], { input: line });
    expect(jsonLines(input.stdout)).toEqual([{ topic: 'feedback', appended: 1 }]);
    expect(input.stderr).not.toContain('warning');
  });

  it('produce → run → consume while running (HTTP API), healthz, metrics, dead letters, SIGTERM, inspect', async () => {
    const dataDir = join(base, 'e2e');
    const inputFile = join(base, 'predictions.jsonl');
    writeFileSync(inputFile, `${PREDICTIONS.map((p) => JSON.stringify(p)).join('\n')}\n`);

    // produce without a running engine: direct access to the embedded log
    const producedP = await cli(['produce', 'predictions', '--data-dir', dataDir, '--file', inputFile]);
    expect(producedP.code, producedP.stderr).toBe(0);
    expect(jsonLines(producedP.stdout)).toEqual([{ topic: 'predictions', appended: 5 }]);
    const producedF = await cli(['produce', 'feedback', '--data-dir', dataDir], { input: FEEDBACK.map((f) => JSON.stringify(f)).join('\n') });
    expect(producedF.code, producedF.stderr).toBe(0);
    expect(jsonLines(producedF.stdout)).toEqual([{ topic: 'feedback', appended: 4 }]);

    // run in the background
    const engine = startCli(['run', '--data-dir', dataDir, '--http-port', '0']);
    children.push(engine);
    let engineErr = '';
    engine.stderr!.on('data', (c: Buffer) => (engineErr += c.toString()));
    const exited = new Promise<number | null>((resolve) => engine.once('exit', (code) => resolve(code)));
    const infoPath = join(dataDir, 'engine.json');
    const info = await waitFor('engine.json', () => (existsSync(infoPath) ? (JSON.parse(readFileSync(infoPath, 'utf8')) as { pid: number; url: string }) : undefined));
    expect(info.pid).toBe(engine.pid);
    expect(info.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    // consume works while run holds the database (it goes through the engine's HTTP API)
    const samples = await waitFor('4 samples', async () => {
      const r = await cli(['consume', 'samples', '--data-dir', dataDir]);
      expect(r.code, r.stderr + engineErr).toBe(0);
      const lines = jsonLines(r.stdout);
      return lines.length >= 4 ? lines : undefined;
    });
    expect(Object.fromEntries(samples.map((s) => [s.requestId, s.label]))).toEqual(EXPECTED_LABELS);
    expect(samples.map((s) => s.revision)).toEqual([0, 0, 0, 0]);
    for (const s of samples) {
      const attributes = s.attributes as Record<string, string>;
      expect(attributes.name).toMatch(/^tok_[A-Za-z0-9_-]{22}$/);
      expect(attributes.phone).toMatch(/^\*{11}\d{4}$/);
      expect(attributes.channel).toBe('web');
    }

    // a malformed line produced while the engine runs ends in dead-letters, with its reason in the headers
    const producedBad = await cli(['produce', 'feedback', '--data-dir', dataDir], { input: `${MALFORMED}\n` });
    expect(producedBad.code, producedBad.stderr).toBe(0);
    expect(jsonLines(producedBad.stdout)).toEqual([{ topic: 'feedback', appended: 1 }]);
    const deadLetters = await waitFor('a dead letter', async () => {
      const r = await cli(['consume', 'dead-letters', '--data-dir', dataDir, '--metadata']);
      expect(r.code, r.stderr).toBe(0);
      const lines = jsonLines(r.stdout);
      return lines.length > 0 ? lines : undefined;
    });
    expect(deadLetters).toHaveLength(1);
    const letter = deadLetters[0] as { topic: string; headers: Record<string, string>; value: { reasonCode: string; sourceTopic: string; payload: string } };
    expect(letter.topic).toBe('dead-letters');
    expect(letter.headers['sampleloop.dlq.reason.code']).toBe('undecodable');
    expect(letter.headers['sampleloop.dlq.reason']).toMatch(/JSON/);
    expect(letter.headers['sampleloop.dlq.source.topic']).toBe('feedback');
    expect(letter.value.reasonCode).toBe('undecodable');
    // unparseable bytes may hold sensitive values: the payload is the original line sealed (encrypted), never in clear
    expect(letter.headers['sampleloop.dlq.payload.encoding']).toBe('sealed');
    expect(JSON.stringify(letter.value)).not.toContain(MALFORMED.trim());
    // whoever holds the privacy key can open it: produce trims each line
    const unsealed = await cli(['consume', 'dead-letters', '--data-dir', dataDir, '--unseal']);
    expect((JSON.parse(unsealed.stdout.trim().split('\n')[0] as string) as { payloadUnsealed: string }).payloadUnsealed).toBe(MALFORMED.trim());

    // inspect while running goes through HTTP too
    const inspectRunning = await cli(['inspect', '--json', '--data-dir', dataDir]);
    expect(inspectRunning.code, inspectRunning.stderr).toBe(0);

    // health and metrics
    const health = await fetch(`${info.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', mode: 'embedded', tasks: 1 });
    const metrics = await (await fetch(`${info.url}/metrics`)).text();
    expect(metrics).toContain('sampleloop_records_in_total');
    expect(metrics).toMatch(/sampleloop_records_in_total\{topology="samples",topic="predictions"\} 5\b/);
    expect(metrics).toMatch(/sampleloop_records_in_total\{topology="samples",topic="feedback"\} 5\b/);
    expect(metrics).toMatch(/sampleloop_dead_letters_total\{topology="samples",reason="undecodable"\} 1\b/);
    expect(metrics).toMatch(/sampleloop_records_out_total\{topic="dead-letters"\} 1\b/);
    expect(metrics).toMatch(/sampleloop_records_out_total\{topic="samples"\} 4\b/);

    // SIGTERM: clean stop, exit code 0, engine.json removed
    engine.kill('SIGTERM');
    const code = await Promise.race([exited, sleep(15_000).then(() => 'timeout' as const)]);
    expect(code, engineErr).toBe(0);
    expect(existsSync(infoPath)).toBe(false);

    // inspect after the stop opens the log directly; counts match what was produced and derived
    const inspected = await cli(['inspect', '--json', '--data-dir', dataDir]);
    expect(inspected.code, inspected.stderr).toBe(0);
    const report = JSON.parse(inspected.stdout) as { topics: Array<{ topic: string; records: number; endOffsets: number[] }> };
    const records = Object.fromEntries(report.topics.map((t) => [t.topic, t.records]));
    expect(records).toMatchObject({ predictions: 5, feedback: 5, samples: 4, 'dead-letters': 1, orphans: 0, late: 0, review: 0 });
    const running = JSON.parse(inspectRunning.stdout) as typeof report;
    expect(Object.fromEntries(running.topics.map((t) => [t.topic, t.records]))).toMatchObject({ predictions: 5, feedback: 5, samples: 4 });
  }, 85_000);

  it('a bad setting in the environment exits with code 2 and names the setting', async () => {
    const dataDir = join(base, 'config-env');
    const r = await cli(['inspect', '--data-dir', dataDir], { env: { SAMPLELOOP__join__graceMs: '-5' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('SL_CONFIG');
    expect(r.stderr).toContain('join.graceMs');
    expect(r.stdout).toBe('');
  });

  it('an unknown key in the config file exits with code 2 and names the key', async () => {
    const dataDir = join(base, 'config-file');
    mkdirSync(dataDir, { recursive: true });
    const file = join(dataDir, 'sampleloop.json');
    writeFileSync(file, JSON.stringify({ join: { graceMs: 1000, gracems: 5 } }));
    const r = await cli(['run', '--config', file, '--data-dir', dataDir, '--http-port', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('SL_CONFIG');
    expect(r.stderr).toMatch(/join\b.*gracems/);
    expect(existsSync(join(dataDir, 'engine.json'))).toBe(false);
  });

  it('usage errors exit 2 with a message that says what to fix: unknown options and commands, missing arguments and files, bad topic names', async () => {
    const dataDir = join(base, 'usage');
    const cases: Array<{ args: string[]; says: RegExp }> = [
      { args: ['run', '--no-such-flag'], says: /unknown option '--no-such-flag'/ },
      { args: ['frobnicate'], says: /unknown command 'frobnicate'/ },
      { args: ['produce', '--data-dir', dataDir], says: /missing required argument 'topic'/ },
      { args: ['produce', 'predictions', '--data-dir', dataDir, '--file', join(dataDir, 'missing.jsonl')], says: /cannot read --file .*missing\.jsonl: ENOENT/ },
      { args: ['produce', 'bad topic/name', '--data-dir', dataDir], says: /invalid topic name "bad topic\/name"/ },
      { args: ['produce', 'predictions', '--partitions', '0', '--data-dir', dataDir], says: /partitions must be a positive integer/ },
      { args: ['replay', '--gateway', join(ROOT, 'package.json'), '--out', 'file:/tmp/x.jsonl', '--delimiter', ';;'], says: /--delimiter must be one character/ },
    ];
    for (const c of cases) {
      const r = await cli(c.args, { input: '{"requestId":"u-1"}\n' });
      expect({ args: c.args, code: r.code }).toEqual({ args: c.args, code: 2 });
      expect(r.stderr).toMatch(c.says);
    }
  });

  it('reading commands refuse a data dir with no embedded log instead of creating one; consume refuses a partition the topic lacks', async () => {
    const missing = join(base, 'typo-in-data-dir');
    for (const args of [['consume', 'samples'], ['inspect'], ['models', 'list']]) {
      const r = await cli([...args, '--data-dir', missing]);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toContain(`no embedded log in ${missing}`);
    }
    expect(existsSync(missing)).toBe(false);
    const dataDir = join(base, 'one-partition');
    expect((await cli(['produce', 'predictions', '--data-dir', dataDir], { input: `${JSON.stringify(prediction(1))}\n` })).code).toBe(0);
    const r = await cli(['consume', 'predictions', '--partition', '5', '--data-dir', dataDir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('topic "predictions" has 1 partition(s), numbered from 0; there is no partition 5');
    const ok = await cli(['consume', 'predictions', '--partition', '0', '--data-dir', dataDir]);
    expect(jsonLines(ok.stdout).map((v) => v.requestId)).toEqual(['cli-1']);
  });

  it('a port in use is a configuration error that names --http-port', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const r = await cli(['run', '--data-dir', join(base, 'port-in-use'), '--http-port', String(port)]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`cannot listen on 127.0.0.1:${port}`);
      expect(r.stderr).toContain('--http-port');
    } finally {
      blocker.close();
    }
  });

  it('demo --requests 300 --quiet runs the closed loop and prints the summary, the ledger check, 0 raw values and the chart path', async () => {
    const help = await cli(['demo', '--help']);
    for (const word of ['--data-dir', '--requests', '--seed', '--chart', '--quiet']) expect(help.stdout, `demo --help mentions ${word}`).toContain(word);

    const dataDir = join(base, 'demo');
    const r = await cli(['demo', '--requests', '300', '--quiet', '--data-dir', dataDir], { timeoutMs: 90_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toContain('traffic:');
    expect(r.stdout).toMatch(/^ {2}category +seed \(v1\) +final +oracle +promoted +rejected +samples +unmatched +review$/m);
    expect(r.stdout).toMatch(/^ {2}digits +\d+\.\d% +\d+\.\d% \(v\d+\) +\d+\.\d% +\d+ +\d+ +\d+ +\d+ +\d+$/m);
    expect(r.stdout).toMatch(/^ {2}breast-cancer +\d+\.\d% +\d+\.\d% \(v\d+\) +\d+\.\d%/m);
    expect(r.stdout).toMatch(/join: \d+ samples .*dead letters [1-9]/);
    expect(r.stdout).toContain('sample labels vs ground truth: 100.00% of samples right');
    expect(r.stdout).toMatch(/model ledger: ok: \d+ version\(s\) of 2 categories verified/);
    expect(r.stdout).toContain('raw sensitive values found in outputs: 0');
    const chart = join(dataDir, 'accuracy.html');
    expect(r.stdout).toContain(`chart: ${chart}`);
    expect(readFileSync(chart, 'utf8')).toMatch(/^<!DOCTYPE html>[\s\S]*<svg [\s\S]*<\/html>\n$/);

    // The data directory is kept: the ledger it left verifies with the models command.
    const verify = await cli(['models', 'verify', '--data-dir', dataDir]);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/^ok: \d+ version\(s\) of 2 categories verified/);

    // A used data directory is refused (the demo needs a new or empty one).
    const again = await cli(['demo', '--requests', '10', '--quiet', '--data-dir', dataDir]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('SL_USAGE');
    expect(again.stderr).toContain('not empty');
  }, 120_000);
});
