/**
 * Replay from archived logs: formats (JSON lines / CSV, plain / gzip), column mapping, rejects with
 * line numbers, --strict, idempotence, --since/--until, and the file / embedded / kafka targets.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import avro from 'avsc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type SampleloopConfig } from '../config/config.js';
import { directAccess } from '../access/embedded.js';
import { openEmbeddedLog } from '../app/embedded.js';
import { rocksRegistryStorage } from '../schemas/registry-storage.js';
import { SampleloopError, UsageError, ValidationError } from '../engine/errors.js';
import { CsvRecordSplitter } from '../replay/input/csv.js';
import { expandInputs, segmentRegex } from '../replay/input/files.js';
import { parseEventTime, parseMapping, RecordNormalizer } from '../replay/input/mapping.js';
import { formatProgress, ReplayProgress } from '../replay/progress.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import { runReplay, type ReplayRequest } from '../replay/topology.js';
import { HARNESS_PRIVACY_KEY, protectAsDocumented } from './helpers/engine-harness.js';

const T0 = Date.UTC(2026, 0, 5, 9, 0, 0);
const MINUTE = 60_000;

let root: string;
let keyFile: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'sampleloop-replay-test-'));
  keyFile = join(root, 'privacy.key');
  writeFileSync(keyFile, `${HARNESS_PRIVACY_KEY.toString('hex')}\n`);
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function dir(name: string): string {
  const path = join(root, name);
  mkdirSync(path, { recursive: true });
  return path;
}

function configFor(dataDir: string, extra: Record<string, unknown> = {}): SampleloopConfig {
  return parseConfig({ dataDir, log: { level: 'silent' }, privacy: { keyFile, keyEnv: 'SAMPLELOOP_REPLAY_TEST_UNUSED_KEY' }, ...extra });
}

function prediction(i: number, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const t = T0 + i * MINUTE;
  return {
    requestId: `req-${String(i).padStart(4, '0')}`,
    category: 'fraud',
    features: { amount: 10 + i, hour: i % 24 },
    attributes: { name: `Customer ${i}`, phone: `+44 7700 900${String(100 + i).slice(-3)}`, channel: 'web' },
    predictedLabel: i % 3 === 0 ? 'fraud' : 'legit',
    scores: { fraud: i % 3 === 0 ? 0.8 : 0.2, legit: i % 3 === 0 ? 0.2 : 0.8 },
    modelVersion: '1.4.0',
    requestTimestamp: t - 5,
    timestamp: t,
    ...overrides,
  };
}

function jsonLines(values: readonly object[]): string {
  return values.map((v) => JSON.stringify(v)).join('\n') + '\n';
}

function readJsonLines(path: string): Array<Record<string, unknown>> {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function replay(request: Omit<ReplayRequest, 'config'> & { config?: SampleloopConfig }): Promise<Awaited<ReturnType<typeof runReplay>>> {
  return runReplay({ config: request.config ?? configFor(dir('unused-data')), ...request });
}

describe('CSV records', () => {
  it('splits quoted fields with delimiters, doubled quotes and line breaks', () => {
    const csv = new CsvRecordSplitter(',');
    expect(csv.push('a,b,c', 1)).toEqual({ cells: ['a', 'b', 'c'], line: 1 });
    expect(csv.push('"x, y","say ""hi""",', 2)).toEqual({ cells: ['x, y', 'say "hi"', ''], line: 2 });
    expect(csv.push('"first line', 3)).toBeUndefined();
    expect(csv.open).toBe(true);
    expect(csv.push('second line",z', 4)).toEqual({ cells: ['first line\nsecond line', 'z'], line: 3 });
    expect(new CsvRecordSplitter(';').push('1;"2;3"', 9)).toEqual({ cells: ['1', '2;3'], line: 9 });
  });
});

describe('column mapping and normalization', () => {
  it('renames mapped columns, folds prefixed columns and converts CSV text to the schema types', () => {
    const mapping = parseMapping(['gateway.requestId=req_id,gateway.timestamp=ts,gateway.requestTimestamp=ts,gateway.features.amount=amt']);
    const gateway = new RecordNormalizer('gateway', mapping.gateway);
    const row = {
      req_id: 'r1',
      ts: '2026-01-05T09:00:00.250Z',
      category: 'fraud',
      amt: '12.5',
      'features.hour': '9',
      'features.blank': '',
      'attributes.name': 'Ann',
      scores: '{"fraud":"0.9","legit":0.1}',
      predictedLabel: 'fraud',
      modelVersion: 'v1',
      unrelated: 'dropped',
    };
    expect(gateway.normalize(row, 'csv')).toEqual({
      requestId: 'r1',
      timestamp: Date.UTC(2026, 0, 5, 9, 0, 0, 250),
      requestTimestamp: Date.UTC(2026, 0, 5, 9, 0, 0, 250),
      category: 'fraud',
      features: { amount: 12.5, hour: 9 },
      attributes: { name: 'Ann' },
      scores: { fraud: 0.9, legit: 0.1 },
      predictedLabel: 'fraud',
      modelVersion: 'v1',
    });
    const business = new RecordNormalizer('business', parseMapping(['business.actualLabel=verified_value']).business);
    expect(business.normalize({ requestId: 'r1', timestamp: '1767603600000', verified_value: '', correct: 'no' }, 'csv')).toEqual({
      requestId: 'r1',
      timestamp: 1767603600000,
      correct: false,
    });
  });

  it('keeps JSON types (a number given as text is a wrong type) and reaches into nested objects', () => {
    const gateway = new RecordNormalizer('gateway', parseMapping(['gateway.requestId=meta.id']).gateway);
    const out = gateway.normalize({ meta: { id: 'n1' }, features: { a: '1' }, 'features.b': 2 }, 'jsonl');
    expect(out).toEqual({ requestId: 'n1', features: { a: '1', b: 2 } });
  });

  it('reads a JSON mapping file and rejects unknown targets with the list of valid ones', () => {
    const file = join(dir('mapping'), 'map.json');
    writeFileSync(file, JSON.stringify({ gateway: { requestId: 'rid' }, business: { actualLabel: 'label' } }));
    expect(parseMapping([file])).toEqual({ gateway: [{ target: 'requestId', source: 'rid' }], business: [{ target: 'actualLabel', source: 'label' }] });
    expect(() => parseMapping(['gateway.label=x'])).toThrow(/"label" is not a Prediction field; use one of requestId, category/);
    expect(() => parseMapping(['business.features.x=y'])).toThrow(UsageError);
    expect(() => parseMapping(['requestId=x'])).toThrow(/side\.field=column/);
  });

  it('parses event times as ISO-8601 (UTC without a zone) or epoch milliseconds', () => {
    expect(parseEventTime('1767603600000')).toBe(1767603600000);
    expect(parseEventTime('2026-01-05')).toBe(Date.UTC(2026, 0, 5));
    expect(parseEventTime('2026-01-05 09:30:00')).toBe(Date.UTC(2026, 0, 5, 9, 30));
    expect(parseEventTime('2026-01-05T09:30:00+01:00')).toBe(Date.UTC(2026, 0, 5, 8, 30));
    expect(parseEventTime('2026-01-05T09:30:00.5-0200')).toBe(Date.UTC(2026, 0, 5, 11, 30, 0, 500));
    expect(parseEventTime('yesterday')).toBeUndefined();
    expect(parseEventTime('2026-13-45')).toBeUndefined();
  });
});

describe('input files', () => {
  it('expands globs into sorted files and fails on a pattern that matches nothing', () => {
    const d = dir('globs');
    mkdirSync(join(d, 'sub'), { recursive: true });
    for (const name of ['b-2.jsonl', 'b-1.jsonl.gz', 'a.csv', 'sub/b-3.jsonl', '.hidden.jsonl']) writeFileSync(join(d, name), '');
    expect(expandInputs([join(d, 'b-*')])).toEqual([join(d, 'b-1.jsonl.gz'), join(d, 'b-2.jsonl')]);
    expect(expandInputs([join(d, '**', 'b-*.jsonl')])).toEqual([join(d, 'b-2.jsonl'), join(d, 'sub', 'b-3.jsonl')]);
    expect(expandInputs([join(d, '{a.csv,b-2.jsonl}'), join(d, 'a.csv')])).toEqual([join(d, 'a.csv'), join(d, 'b-2.jsonl')]);
    expect(() => expandInputs([join(d, 'c-*.jsonl')])).toThrow(/matches no file/);
    expect(() => expandInputs([d])).toThrow(/is a directory/);
    expect(segmentRegex('*.jsonl').test('.x.jsonl')).toBe(false);
  });
});

describe('progress', () => {
  it('shows share, records, rate and ETA; rewrites the line in place on a TTY', () => {
    let now = 0;
    const written: string[] = [];
    const progress = new ReplayProgress({ enabled: true, intervalMs: 1000, stream: { isTTY: true, write: (t: string) => written.push(t) }, now: () => now });
    progress.start('1/3 reading', 'bytes', 4_000_000);
    now = 2000;
    progress.update(1_000_000, 50_000);
    now = 2500;
    progress.update(1_500_000, 60_000);
    progress.end();
    expect(written).toHaveLength(2);
    expect(written[0]).toBe('\rreplay 1/3 reading · 25.0% · 1.0/4.0 MB · 50,000 records · 25,000 records/s · ETA 6s\u001b[K');
    expect(written[1]).toMatch(/^\rreplay 1\/3 reading · 37\.5% .* done in 3s\u001b\[K\n$/);
    expect(formatProgress({ label: 'x', unit: 'records', total: 10, startedAt: 0, done: 5, records: 5 }, 60_000, false)).toContain('ETA 1m00s');
  });
});

describe('replay to files', () => {
  let archive: string;
  let good: number;

  beforeAll(() => {
    archive = dir('archive');
    const predictions = Array.from({ length: 30 }, (_, i) => prediction(i));
    // Archive order is not event-time order: the second file holds the earliest predictions.
    writeFileSync(join(archive, 'gateway-000002.jsonl.gz'), gzipSync(jsonLines(predictions.slice(0, 15))));
    const first = jsonLines(predictions.slice(15));
    const bad = [
      '{"requestId": "broken", ',
      JSON.stringify({ ...prediction(99), requestId: '' }),
      JSON.stringify({ ...prediction(98), features: { amount: 'lots' } }),
      '[1, 2, 3]',
    ].join('\n');
    writeFileSync(join(archive, 'gateway-000001.jsonl'), `${first}${bad}\n`);
    // Business logs: CSV with other column names, one bad row; request 29 gets no feedback.
    const rows = ['req_id,feedback_time,verified_value,correct,source'];
    for (let i = 0; i < 29; i++) {
      const p = predictions[i] as { requestId: string; predictedLabel: string; timestamp: number };
      const label = i % 5 === 0 ? (p.predictedLabel === 'fraud' ? 'legit' : 'fraud') : p.predictedLabel;
      rows.push(`${p.requestId},${new Date(p.timestamp + 10 * MINUTE).toISOString()},${label},,"back office, EU"`);
    }
    rows.push('req-0000,not-a-time,fraud,,crm');
    rows.push('orphan-1,2026-01-05T10:00:00Z,,true,crm');
    writeFileSync(join(archive, 'business.csv'), `${rows.join('\r\n')}\r\n`);
    good = 30;
  });

  function request(out: string, extra: Partial<ReplayRequest> = {}): Omit<ReplayRequest, 'config'> {
    return {
      gateway: [join(archive, 'gateway-*')],
      business: [join(archive, 'business.csv')],
      out: `file:${out}`,
      mapping: parseMapping(['business.requestId=req_id,business.timestamp=feedback_time,business.actualLabel=verified_value']),
      ...extra,
    };
  }

  it('joins with the online semantics, writes side outputs next to the samples and reports bad lines with their line numbers', async () => {
    const out = join(dir('run-a'), 'samples.jsonl');
    const summary = await replay(request(out));
    const samples = readJsonLines(out);
    expect(samples.map((s) => s.requestId)).toEqual(Array.from({ length: 29 }, (_, i) => `req-${String(i).padStart(4, '0')}`));
    for (const s of samples) {
      const i = Number(String(s.requestId).slice(4));
      const p = prediction(i) as { predictedLabel: string; features: object; attributes: Record<string, string>; requestTimestamp: number; timestamp: number };
      expect(s.origin).toBe('replay');
      expect(s.features).toEqual(p.features);
      expect(s.attributes).toEqual(protectAsDocumented(p.attributes));
      expect(s.requestTimestamp).toBe(p.requestTimestamp);
      expect(s.feedbackTimestamp).toBe(p.timestamp + 10 * MINUTE);
      expect(s.labelSource).toBe(i % 5 === 0 ? 'CORRECTED' : 'CONFIRMED');
      expect(s.label).toBe(i % 5 === 0 ? (p.predictedLabel === 'fraud' ? 'legit' : 'fraud') : p.predictedLabel);
    }
    const base = out.replace(/\.jsonl$/, '');
    const unmatched = readJsonLines(`${base}.unmatched.jsonl`);
    expect(unmatched.map((u) => (u.prediction as { requestId: string }).requestId)).toEqual(['req-0029']);
    const orphans = readJsonLines(`${base}.orphans.jsonl`);
    expect(orphans.map((o) => [(o.feedback as { requestId: string }).requestId, o.reason])).toEqual([['orphan-1', 'no-prediction']]);
    expect(readJsonLines(`${base}.late.jsonl`)).toEqual([]);
    expect(readJsonLines(`${base}.review.jsonl`)).toEqual([]);
    expect(readJsonLines(`${base}.dead-letters.jsonl`)).toEqual([]);

    const rejects = readJsonLines(`${base}.rejects.jsonl`);
    const gw1 = join(archive, 'gateway-000001.jsonl');
    expect(rejects).toEqual([
      { file: gw1, line: 16, side: 'gateway', reasonCode: 'undecodable', reason: expect.stringMatching(/^not valid JSON/) as unknown, requestId: null },
      { file: gw1, line: 17, side: 'gateway', reasonCode: 'missing-request-id', reason: 'requestId is missing or empty', requestId: null },
      { file: gw1, line: 18, side: 'gateway', reasonCode: 'wrong-type', reason: expect.stringContaining('features.amount must be a number') as unknown, requestId: 'req-0098' },
      { file: gw1, line: 19, side: 'gateway', reasonCode: 'undecodable', reason: 'a line must hold one JSON object, got an array', requestId: null },
      { file: join(archive, 'business.csv'), line: 31, side: 'business', reasonCode: 'wrong-type', reason: expect.stringContaining('timestamp must be an integer number of milliseconds') as unknown, requestId: 'req-0000' },
    ]);
    // Reasons never quote record content.
    expect(JSON.stringify(rejects)).not.toContain('lots');

    expect(summary).toMatchObject({
      files: { gateway: 2, business: 1 },
      records: { gateway: good + 4, business: 31 },
      staged: { predictions: good, feedback: 30 },
      rejected: 5,
      rejectedByReason: { undecodable: 2, 'missing-request-id': 1, 'wrong-type': 2 },
      outOfRange: 0,
      written: { samples: 29, unmatched: 1, orphans: 1, late: 0, review: 0, deadLetters: 0 },
      samplesEmitted: 29,
      rejectsFile: `${base}.rejects.jsonl`,
    });
  });

  it('--strict stops at the first bad line: exit with its file and line, nothing written but the rejects', async () => {
    const out = join(dir('run-strict'), 'samples.jsonl');
    const error = await replay(request(out, { strict: true })).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).reason).toBe('undecodable');
    expect((error as Error).message).toContain(`${join(archive, 'gateway-000001.jsonl')}:16:`);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(dir('run-strict'))).toEqual(['samples.rejects.jsonl']);
    expect(readJsonLines(join(dir('run-strict'), 'samples.rejects.jsonl'))).toHaveLength(1);
  });

  it('is idempotent: the same replay twice gives byte-identical files, JSON lines and Avro', async () => {
    const a = join(dir('twice-a'), 's.jsonl');
    const b = join(dir('twice-b'), 's.jsonl');
    await replay(request(a));
    await replay(request(b));
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
    for (const side of ['unmatched', 'orphans', 'rejects']) {
      const sa = readFileSync(a.replace('.jsonl', `.${side}.jsonl`), 'utf8').replaceAll(dir('twice-a'), '');
      expect(sa).toBe(readFileSync(b.replace('.jsonl', `.${side}.jsonl`), 'utf8').replaceAll(dir('twice-b'), ''));
    }
    const avroA = join(dir('twice-a'), 's.avro');
    const avroB = join(dir('twice-b'), 's.avro');
    await replay(request(avroA));
    await replay(request(avroB));
    expect(readFileSync(avroA).equals(readFileSync(avroB))).toBe(true);
    const decoded: unknown[] = [];
    await new Promise<void>((resolve, reject) => {
      avro.createFileDecoder(avroA).on('data', (v: unknown) => decoded.push(v)).on('end', resolve).on('error', reject);
    });
    expect(JSON.parse(JSON.stringify(decoded))).toEqual(readJsonLines(a));
  });

  it('--since / --until bound predictions by event time; feedback follows its window', async () => {
    const out = join(dir('range'), 's.jsonl');
    const summary = await replay(request(out, { since: T0 + 10 * MINUTE, until: T0 + 20 * MINUTE }));
    const ids = readJsonLines(out).map((s) => s.requestId);
    expect(ids).toEqual(Array.from({ length: 10 }, (_, i) => `req-${String(i + 10).padStart(4, '0')}`));
    expect(summary.staged.predictions).toBe(10);
    expect(summary.outOfRange).toBe(20);
    // Feedback of predictions before --since is still inside [since - beforeMs, until + afterMs): it becomes orphaned.
    expect(summary.written.orphans).toBe(summary.staged.feedback - 10);
  });

  it('detects gzip by its magic bytes and CSV by content when the names do not tell', async () => {
    const d = dir('sniff');
    writeFileSync(join(d, 'gw.log'), gzipSync(jsonLines([prediction(1), prediction(2)])));
    writeFileSync(join(d, 'fb.log'), 'requestId,timestamp,actualLabel\nreq-0001,' + String(T0 + 2 * MINUTE) + ',fraud\n');
    const out = join(d, 'out.jsonl');
    const summary = await replay({ gateway: [join(d, 'gw.log')], business: [join(d, 'fb.log')], out: `file:${out}` });
    expect(summary.rejected).toBe(0);
    expect(readJsonLines(out).map((s) => [s.requestId, s.label])).toEqual([['req-0001', 'fraud']]);
    expect(summary.written.unmatched).toBe(1);
  });

  it('reports a truncated gzip file as a bad line and keeps what came before it', async () => {
    const d = dir('truncated');
    const whole = gzipSync(jsonLines(Array.from({ length: 200 }, (_, i) => prediction(i))));
    writeFileSync(join(d, 'gw.jsonl.gz'), whole.subarray(0, Math.floor(whole.length * 0.6)));
    const out = join(d, 'out.jsonl');
    const summary = await replay({ gateway: [join(d, 'gw.jsonl.gz')], business: [], out: `file:${out}` });
    expect(summary.rejected).toBe(1);
    const [reject] = readJsonLines(join(d, 'out.rejects.jsonl'));
    expect(reject?.reason).toMatch(/gzip data is corrupt or truncated after line \d+/);
    expect(summary.staged.predictions).toBeGreaterThan(0);
    expect(summary.staged.predictions).toBeLessThan(200);
    expect(summary.written.unmatched).toBe(summary.staged.predictions);
  });

  it('stops when aborted: ClosedError, nothing written, temporary directory removed', async () => {
    const d = dir('aborted');
    const temp = dir('aborted-temp');
    const controller = new AbortController();
    controller.abort();
    const error = await replay({ ...request(join(d, 's.jsonl')), tempDir: temp, signal: controller.signal }).catch((err: unknown) => err);
    expect((error as SampleloopError).code).toBe('SL_CLOSED');
    expect(readdirSync(temp)).toEqual([]);
    expect(readdirSync(d)).toEqual(['s.rejects.jsonl']);
  });

  it('refuses kafka without a configured cluster, unknown targets and empty inputs with clear messages', async () => {
    await expect(replay(request('x', { out: 'kafka' }))).rejects.toThrow(/--out kafka needs kafka.bootstrapServers/);
    await expect(replay(request('x', { out: 'file:/tmp/x.csv' }))).rejects.toThrow(/must end in \.jsonl .* or \.avro/);
    await expect(replay(request('x', { out: 's3://bucket' }))).rejects.toThrow(UsageError);
    await expect(replay({ gateway: [], business: [], out: `file:${join(root, 'x.jsonl')}` })).rejects.toThrow(/nothing to replay/);
  });

  it('asks for the engine\'s privacy key instead of inventing one for a file target', async () => {
    const config = parseConfig({ dataDir: dir('no-key'), privacy: { keyEnv: 'SAMPLELOOP_REPLAY_TEST_UNUSED_KEY' } });
    const error = await replay({ ...request(join(dir('no-key-out'), 's.jsonl')), config }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(SampleloopError);
    expect((error as SampleloopError).code).toBe('SL_CONFIG');
    expect((error as Error).message).toContain('point --data-dir at the engine\'s data dir');
  });
});

describe('replay to an embedded data dir', () => {
  it('appends samples keyed by request ID; a second run appends the same keys and values', async () => {
    const d = dir('embedded-archive');
    writeFileSync(join(d, 'gw.jsonl'), jsonLines([prediction(1), prediction(2), prediction(3)]));
    writeFileSync(join(d, 'fb.jsonl'), jsonLines([1, 2, 4].map((i) => ({ requestId: prediction(i).requestId, timestamp: T0 + i * MINUTE + 1000, correct: true }))));
    const target = dir('embedded-target');
    const config = configFor(target);
    const run = (): ReturnType<typeof runReplay> => runReplay({ config, gateway: [join(d, 'gw.jsonl')], business: [join(d, 'fb.jsonl')], out: 'embedded' });
    const first = await run();
    expect(first.outputs.samples).toBe(`embedded:${target} topic samples`);
    expect(first.rejectsFile).toBe(join(target, 'replay-rejects.jsonl'));
    const second = await run();
    expect(second.written).toEqual(first.written);

    const log = await openEmbeddedLog(config);
    try {
      const access = directAccess(log, new LocalSchemaRegistry(rocksRegistryStorage(log.db)));
      const samples = await access.read('samples');
      expect(samples.map((r) => r.key)).toEqual(['req-0001', 'req-0002', 'req-0001', 'req-0002']);
      expect(samples[2]?.value).toEqual(samples[0]?.value);
      expect(samples[3]?.value).toEqual(samples[1]?.value);
      expect(samples[0]?.value).toMatchObject({ requestId: 'req-0001', label: prediction(1).predictedLabel, labelSource: 'CONFIRMED', origin: 'replay' });
      expect(log.topic('samples')?.compact).toBe(true);
      log.compact('samples');
      expect((await access.read('samples')).map((r) => r.key)).toEqual(['req-0001', 'req-0002']);
      expect((await access.read('unmatched')).map((r) => (r.value as { prediction: { requestId: string } }).prediction.requestId)).toEqual(['req-0003', 'req-0003']);
      expect((await access.read('orphans')).map((r) => r.key)).toEqual(['req-0004', 'req-0004']);
    } finally {
      await log.close();
    }
  });
});
