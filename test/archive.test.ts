/**
 * `archive`: input topics → rolling gzip JSON-lines files in replay's format, sensitive attributes
 * protected unless --raw, undecodable records listed without content, and incremental runs.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runArchive } from '../cli/archive.js';
import { parseConfig, type SampleloopConfig } from '../config/config.js';
import { directAccess } from '../access/embedded.js';
import { openEmbeddedLog } from '../app/embedded.js';
import { rocksRegistryStorage } from '../schemas/registry-storage.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import { schemaOf } from '../schemas/index.js';
import { MANIFEST_FILE, SKIPPED_FILE } from '../replay/archive.js';
import { HARNESS_PRIVACY_KEY, protectAsDocumented } from './helpers/engine-harness.js';
import { runCli } from './helpers/cli-in-process.js';

const T0 = Date.UTC(2026, 0, 5);

let root: string;
let config: SampleloopConfig;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'sampleloop-archive-test-'));
  writeFileSync(join(root, 'key'), HARNESS_PRIVACY_KEY.toString('hex'));
  config = parseConfig({ dataDir: join(root, 'data'), log: { level: 'silent' }, privacy: { keyFile: join(root, 'key'), keyEnv: 'SAMPLELOOP_ARCHIVE_TEST_UNUSED_KEY' } });
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

function prediction(i: number): Record<string, unknown> {
  return {
    requestId: `req-${i}`,
    category: 'fraud',
    features: { amount: i * 1.5 },
    attributes: { name: `Customer ${i}`, phone: '+44 7700 900123', idNumber: `ID-${i}`, channel: 'web' },
    predictedLabel: 'legit',
    scores: { fraud: 0.1, legit: 0.9 },
    modelVersion: '1.0.0',
    modelHash: '',
    requestTimestamp: T0 + i * 1000 - 2,
    timestamp: T0 + i * 1000,
  };
}

async function produce(fill: (access: ReturnType<typeof directAccess>, append: (topic: string, value: Buffer | null, key?: string) => void) => Promise<void>): Promise<void> {
  const log = await openEmbeddedLog(config);
  try {
    const access = directAccess(log, new LocalSchemaRegistry(rocksRegistryStorage(log.db)));
    await fill(access, (topic, value, key) => {
      log.ensureTopic(topic);
      log.append([{ topic, key: key === undefined ? null : Buffer.from(key), value, timestamp: T0, headers: {} }]);
    });
  } finally {
    await log.close();
  }
}

function lines(dir: string, prefix: string): Array<Record<string, unknown>> {
  return readdirSync(dir)
    .filter((f) => f.startsWith(`${prefix}-`) && f.endsWith('.jsonl.gz'))
    .sort()
    .flatMap((f) =>
      gunzipSync(readFileSync(join(dir, f)))
        .toString('utf8')
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    );
}

describe('sampleloop archive', () => {
  it('lists a line sealed by ingest protection as such in archive-skipped.jsonl, without its content', async () => {
    const configFile = join(root, 'config.json');
    writeFileSync(configFile, JSON.stringify({ dataDir: config.dataDir, log: { level: 'silent' }, privacy: { keyFile: join(root, 'key'), keyEnv: 'SAMPLELOOP_ARCHIVE_TEST_UNUSED_KEY' } }));
    const input = join(root, 'predictions.jsonl');
    writeFileSync(input, [JSON.stringify(prediction(1)), 'not json, Secret Name', JSON.stringify(prediction(2))].join('\n'));
    expect((await runCli('produce', 'predictions', '--file', input, '-c', configFile)).code).toBe(0);
    const outDir = join(root, 'archive');
    const summary = await runArchive(config, { outDir, maxFileBytes: 1 << 20, raw: false, fromStart: false });
    expect(summary).toMatchObject({ records: { gateway: 2 }, skipped: 1 });
    const skipped = readFileSync(join(outDir, SKIPPED_FILE), 'utf8');
    expect(JSON.parse(skipped)).toEqual({
      topic: 'predictions',
      partition: 0,
      offset: 1,
      reason: 'sealed when it was produced: the line could not be parsed (undecodable); online it is a dead letter (consume dead-letters --unseal)',
    });
    expect(skipped).not.toContain('Secret');
  });

  it('refuses a data dir without an embedded log (exit 2) and creates nothing there', async () => {
    const missing = join(root, 'mistyped');
    const run = await runCli('archive', '--out-dir', join(root, 'archive'), '--data-dir', missing, '--raw');
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(`error [SL_USAGE]: no embedded log in ${missing} (nothing has run or been produced there); check --data-dir or dataDir\n`);
    expect(existsSync(missing)).toBe(false);
  });

  it('counts and warns about input deleted (trimmed) before it was archived, once, and archives what is left', async () => {
    const configFile = join(root, 'config.json');
    writeFileSync(configFile, JSON.stringify({ dataDir: config.dataDir, log: { level: 'silent' }, privacy: { keyFile: join(root, 'key'), keyEnv: 'SAMPLELOOP_ARCHIVE_TEST_UNUSED_KEY' } }));
    const outDir = join(root, 'archive');
    const append = async (topic: string, values: Array<Record<string, unknown>>, deleteBefore?: number): Promise<void> => {
      const log = await openEmbeddedLog(config);
      try {
        log.ensureTopic(topic);
        log.append(values.map((v) => ({ topic, key: Buffer.from(String(v.requestId)), value: Buffer.from(JSON.stringify(v)), timestamp: T0, headers: {} })));
        if (deleteBefore !== undefined) log.deleteBefore(topic, 0, deleteBefore);
      } finally {
        await log.close();
      }
    };
    const feedback = (i: number): Record<string, unknown> => ({ requestId: `req-${i}`, timestamp: T0 + i * 1000 + 500, correct: true });
    await append('predictions', Array.from({ length: 10 }, (_, i) => prediction(i)));
    await append('feedback', Array.from({ length: 4 }, (_, i) => feedback(i)));
    const first = await runCli('archive', '--out-dir', outDir, '-c', configFile);
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout[0] as string)).toMatchObject({ records: { gateway: 10, business: 4 }, deleted: {} });
    expect(first.stderr).toBe('');

    // input trimming deletes processed records before the next archive run: 5 new predictions, every new feedback
    await append('predictions', Array.from({ length: 10 }, (_, i) => prediction(10 + i)), 15);
    await append('feedback', Array.from({ length: 3 }, (_, i) => feedback(4 + i)), 7);
    const second = await runCli('archive', '--out-dir', outDir, '-c', configFile);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout[0] as string)).toMatchObject({ records: { gateway: 5, business: 0 }, deleted: { predictions: 5, feedback: 3 } });
    expect(second.stderr.split('\n').filter((l) => l.length > 0)).toEqual([
      expect.stringMatching(/^warning: 5 record\(s\) of predictions were deleted \(embedded.inputRetentionMs, embedded.retentionMs\) before archive read them; they are in no archive/),
      expect.stringMatching(/^warning: 3 record\(s\) of feedback were deleted/),
    ]);
    expect(lines(outDir, 'gateway').map((l) => l.requestId)).toEqual([...Array.from({ length: 10 }, (_, i) => `req-${i}`), ...Array.from({ length: 5 }, (_, i) => `req-${15 + i}`)]);

    const third = await runCli('archive', '--out-dir', outDir, '-c', configFile);
    expect(JSON.parse(third.stdout[0] as string)).toMatchObject({ records: { gateway: 0, business: 0 }, deleted: {} });
    expect(third.stderr).toBe('');
  });

  it('interleaves the partitions of a topic by event time, so replay can merge the files instead of sorting them', async () => {
    const log = await openEmbeddedLog(config);
    try {
      log.ensureTopic('predictions', { partitions: 3 });
      for (let i = 0; i < 60; i++) {
        log.append([{ topic: 'predictions', key: Buffer.from(`req-${i}`), value: Buffer.from(JSON.stringify(prediction(i))), timestamp: T0, headers: {} }]);
      }
      const perPartition = [0, 1, 2].map((p) => log.read('predictions', p, 0, 100).length);
      expect(perPartition.every((n) => n > 5)).toBe(true);
    } finally {
      await log.close();
    }
    const outDir = join(root, 'archive');
    const summary = await runArchive(config, { outDir, maxFileBytes: 1 << 20, raw: false, fromStart: false });
    expect(summary.records.gateway).toBe(60);
    const archived = lines(outDir, 'gateway').map((l) => l.timestamp as number);
    expect(archived).toEqual(Array.from({ length: 60 }, (_, i) => T0 + i * 1000));
    const manifest = JSON.parse(readFileSync(join(outDir, MANIFEST_FILE), 'utf8')) as { positions: Record<string, Record<string, number>> };
    expect(Object.values(manifest.positions.predictions ?? {}).reduce((a, b) => a + b, 0)).toBe(60);
  });

  it('writes rolling gzip files per kind with sensitive attributes protected and lists what it cannot decode', async () => {
    await produce(async (access, append) => {
      await access.produce('predictions', Array.from({ length: 20 }, (_, i) => JSON.stringify(prediction(i))).join('\n'));
      await access.produce('feedback', Array.from({ length: 10 }, (_, i) => JSON.stringify({ requestId: `req-${i}`, timestamp: T0 + i * 1000 + 500, correct: true })).join('\n'));
      // Avro-framed records (as Kafka producers write them) are archived as JSON too.
      await access.produceAvro?.('feedback', 'Feedback', [{ key: 'req-10', value: { requestId: 'req-10', timestamp: T0 + 10_500, source: 'crm', actualLabel: 'fraud', correct: null }, timestamp: T0 }]);
      append('predictions', Buffer.from('{"requestId": "req-x", "attributes": {"name": "Secret Name"'), 'req-x');
      append('predictions', null, 'req-0');
    });
    const outDir = join(root, 'archive');
    const summary = await runArchive(config, { outDir, maxFileBytes: 2048, raw: false, fromStart: false });

    const names = readdirSync(outDir).sort();
    const gatewayFiles = names.filter((n) => n.startsWith('gateway-'));
    expect(gatewayFiles.length).toBeGreaterThan(3);
    expect(gatewayFiles[0]).toBe('gateway-000001.jsonl.gz');
    expect(gatewayFiles).toEqual(gatewayFiles.map((_, i) => `gateway-${String(i + 1).padStart(6, '0')}.jsonl.gz`));
    expect(names).toContain('business-000001.jsonl.gz');
    expect(names.filter((n) => n.endsWith('.tmp'))).toEqual([]);

    const archived = lines(outDir, 'gateway');
    expect(archived).toEqual(Array.from({ length: 20 }, (_, i) => ({ ...prediction(i), attributes: protectAsDocumented(prediction(i).attributes as Record<string, string>) })));
    const business = lines(outDir, 'business');
    expect(business).toHaveLength(11);
    expect(business[10]).toEqual({ requestId: 'req-10', timestamp: T0 + 10_500, source: 'crm', actualLabel: 'fraud', correct: null });

    expect(summary).toMatchObject({ records: { gateway: 20, business: 11, requests: 0 }, skipped: 1, tombstones: 1, missingTopics: ['requests'] });
    expect(summary.files.map((f) => f.slice(outDir.length + 1))).toEqual([...gatewayFiles, 'business-000001.jsonl.gz']);
    const skipped = readFileSync(join(outDir, SKIPPED_FILE), 'utf8');
    expect(JSON.parse(skipped)).toEqual({ topic: 'predictions', partition: 0, offset: 20, reason: 'not valid JSON' });
    expect(skipped).not.toContain('Secret');
    for (const file of gatewayFiles) expect(gunzipSync(readFileSync(join(outDir, file))).toString('utf8')).not.toContain('Customer');
  });

  it('archives raw Avro records (no Confluent frame), which the engine accepts, as JSON', async () => {
    const feedback = { requestId: 'req-1', timestamp: T0 + 1500, source: '', actualLabel: 'fraud', correct: null };
    await produce(async (access, append) => {
      append('predictions', schemaOf('Prediction').toBuffer(prediction(1)), 'req-1');
      append('feedback', schemaOf('Feedback').toBuffer(feedback), 'req-1');
      append('predictions', Buffer.from('not avro, not json'), 'req-2');
    });
    const outDir = join(root, 'archive');
    const summary = await runArchive(config, { outDir, maxFileBytes: 1 << 20, raw: false, fromStart: false });
    expect(lines(outDir, 'gateway')).toEqual([{ ...prediction(1), attributes: protectAsDocumented(prediction(1).attributes as Record<string, string>) }]);
    expect(lines(outDir, 'business')).toEqual([feedback]);
    expect(summary).toMatchObject({ records: { gateway: 1, business: 1 }, skipped: 1 });
    expect(JSON.parse(readFileSync(join(outDir, SKIPPED_FILE), 'utf8'))).toMatchObject({ topic: 'predictions', offset: 1 });
  });

  it('continues after the previous run: only new records, in new files', async () => {
    await produce(async (access) => {
      await access.produce('predictions', [0, 1, 2].map((i) => JSON.stringify(prediction(i))).join('\n'));
    });
    const outDir = join(root, 'archive');
    const options = { outDir, maxFileBytes: 1 << 20, raw: false, fromStart: false };
    const first = await runArchive(config, options);
    expect(first.records.gateway).toBe(3);
    const second = await runArchive(config, options);
    expect(second.records.gateway).toBe(0);
    expect(second.files).toEqual([]);
    await produce(async (access) => {
      await access.produce('predictions', [3, 4].map((i) => JSON.stringify(prediction(i))).join('\n'));
    });
    const third = await runArchive(config, options);
    expect(third.files).toEqual([join(outDir, 'gateway-000002.jsonl.gz')]);
    expect(lines(outDir, 'gateway').map((l) => l.requestId)).toEqual(['req-0', 'req-1', 'req-2', 'req-3', 'req-4']);
    const manifest = JSON.parse(readFileSync(join(outDir, MANIFEST_FILE), 'utf8')) as { positions: Record<string, Record<string, number>>; next: Record<string, number> };
    expect(manifest.positions.predictions).toEqual({ '0': 5 });
    expect(manifest.next.gateway).toBe(3);

    // --from-start archives everything again, after the existing files; --raw keeps attributes as the topic holds them.
    const again = await runArchive(config, { ...options, fromStart: true, raw: true });
    expect(again.files).toEqual([join(outDir, 'gateway-000003.jsonl.gz')]);
    const raw = gunzipSync(readFileSync(join(outDir, 'gateway-000003.jsonl.gz'))).toString('utf8').split('\n')[0] ?? '';
    expect((JSON.parse(raw) as { attributes: unknown }).attributes).toEqual(prediction(0).attributes);
  });

  it('needs the privacy key unless --raw', async () => {
    await produce(async (access) => {
      await access.produce('predictions', JSON.stringify(prediction(0)));
    });
    const noKey = parseConfig({ dataDir: config.dataDir, privacy: { keyEnv: 'SAMPLELOOP_ARCHIVE_TEST_UNUSED_KEY' } });
    await expect(runArchive(noKey, { outDir: join(root, 'a'), maxFileBytes: 1 << 20, raw: false, fromStart: false })).rejects.toThrow(/pass --raw/);
    const raw = await runArchive(noKey, { outDir: join(root, 'b'), maxFileBytes: 1 << 20, raw: true, fromStart: false });
    expect(raw.records.gateway).toBe(1);
  });
});
