/** The model ledger: hash definition, chain rules, verification, reading and publishing on the embedded log. */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import avro from 'avsc';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { directAccess, type LogAccess } from '../access/embedded.js';
import { EmbeddedLog } from '../engine/embedded/log.js';
import { rocksRegistryStorage } from '../schemas/registry-storage.js';
import { loadDataset } from '../models/datasets/index.js';
import {
  buildVersion,
  canonicalEncoding,
  computeRecordHash,
  decodeLedgerValue,
  ledgerClient,
  LedgerError,
  ledgerJson,
  publishVersion,
  readLedger,
  verifyVersion,
  type NewVersion,
} from '../models/ledger.js';
import { defaultTrainOptions, trainLogistic } from '../models/logistic-regression.js';
import { exportOnnx } from '../models/onnx-export.js';
import { schemaJson } from '../schemas/index.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import type { ModelVersion } from '../schemas/types.js';

const digits = loadDataset('digits');
const small = digits.rows.slice(0, 200);
const bytesA = exportOnnx(trainLogistic(small, digits.featureNames, digits.classes, { ...defaultTrainOptions, maxIterations: 20 }), { version: '1', category: 'digits' });
const bytesB = exportOnnx(trainLogistic(small, digits.featureNames, digits.classes, { ...defaultTrainOptions, maxIterations: 30 }), { version: '2', category: 'digits' });

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function input(overrides: Partial<NewVersion> = {}): NewVersion {
  return {
    category: 'digits',
    onnx: bytesA,
    featureNames: digits.featureNames,
    classes: digits.classes,
    metrics: { holdoutAccuracy: 0.91, trainSize: 200 },
    trainer: 'test',
    createdAt: 1_750_000_000_000,
    ...overrides,
  };
}

describe('buildVersion and the record hash', () => {
  it('fills the chain fields of a first version', () => {
    const v1 = buildVersion(input(), undefined);
    expect(v1).toMatchObject({ category: 'digits', version: '1', sequence: 1, prevRecordHash: '', modelSha256: sha256(bytesA), onnxUri: null, trainingSnapshot: null });
    expect(v1.onnx?.equals(Buffer.from(bytesA))).toBe(true);
    expect(v1.recordHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('hashes the Avro binary of the record with recordHash = "" (checked with a plain avsc type of ModelVersion.avsc without the signature fields)', () => {
    const v1 = buildVersion(input({ metrics: { b: 2, a: 1 } }), undefined);
    // Independent of ledger.ts: the schema file as avsc parses it, less the fields the hash does not cover, metrics keys inserted in sorted order.
    const schema = JSON.parse(schemaJson('ModelVersion')) as { fields: Array<{ name: string }> };
    expect(schema.fields.slice(-3).map((f) => f.name)).toEqual(['recordHash', 'signer', 'signature']);
    schema.fields = schema.fields.filter((f) => f.name !== 'signer' && f.name !== 'signature');
    const type = avro.Type.forSchema(schema as avro.Schema, { wrapUnions: 'auto' });
    const { signer: _signer, signature: _signature, ...hashed } = v1;
    const expected = type.toBuffer({ ...hashed, metrics: { a: 1, b: 2 }, recordHash: '' });
    expect(canonicalEncoding(v1).equals(expected)).toBe(true);
    expect(v1.recordHash).toBe(sha256(expected));
  });

  it('is independent of the order of metrics entries, integer-like keys included (UTF-8 byte order)', () => {
    const a = buildVersion(input({ metrics: { '9': 1, '10': 2, b: 3, a: 4 } }), undefined);
    const b = buildVersion(input({ metrics: { a: 4, b: 3, '10': 2, '9': 1 } }), undefined);
    expect(a.recordHash).toBe(b.recordHash);
    const encoded = canonicalEncoding(a).toString('latin1');
    // Avro strings are a zig-zag varint length (2 × length) then the bytes; the map entries come last but for the hashes.
    const positions = ['10', '9', 'a', 'b'].map((k) => encoded.lastIndexOf(`${String.fromCharCode(k.length * 2)}${k}`));
    expect(positions.every((p) => p > 0)).toBe(true);
    expect([...positions].sort((x, y) => x - y)).toEqual(positions);
  });

  it('links the next version to the previous one', () => {
    const v1 = buildVersion(input(), undefined);
    const v2 = buildVersion(input({ onnx: bytesB, version: 'b' }), v1);
    expect(v2).toMatchObject({ version: 'b', sequence: 2, prevRecordHash: v1.recordHash, modelSha256: sha256(bytesB) });
    expect(v2.recordHash).not.toBe(v1.recordHash);
    expect(buildVersion(input({ onnx: bytesB }), v1).version).toBe('2');
  });

  it('rejects versions that cannot be served or hashed', () => {
    const v1 = buildVersion(input(), undefined);
    const cases: Array<[Partial<NewVersion>, ModelVersion | undefined, RegExp]> = [
      [{ category: '' }, undefined, /category/],
      [{ featureNames: [] }, undefined, /featureNames must not be empty/],
      [{ classes: ['a', 'a'] }, undefined, /duplicates/],
      [{ metrics: { x: Number.NaN } }, undefined, /finite/],
      [{ onnx: new Uint8Array() }, undefined, /empty/],
      [{ category: 'other' }, v1, /belongs to category "digits"/],
      [{ onnxUri: 'https://example.com/m.onnx' }, undefined, /file:\/\//],
    ];
    for (const [overrides, previous, message] of cases) {
      let error: unknown;
      try {
        buildVersion(input(overrides), previous);
      } catch (err) {
        error = err;
      }
      expect(error, JSON.stringify(overrides)).toBeInstanceOf(LedgerError);
      expect((error as LedgerError).code).toBe('SL_LEDGER');
      expect((error as LedgerError).message).toMatch(message);
    }
  });
});

describe('verifyVersion', () => {
  const v1 = buildVersion(input(), undefined);
  const v2 = buildVersion(input({ onnx: bytesB }), v1);
  const failure = (r: ReturnType<typeof verifyVersion>): string => (r.ok ? 'ok' : r.code);

  it('accepts an intact chain', () => {
    expect(verifyVersion(v1, undefined)).toEqual({ ok: true });
    expect(verifyVersion(v2, v1)).toEqual({ ok: true });
  });

  it('detects one flipped byte of the ONNX bytes', () => {
    const onnx = Buffer.from(v2.onnx as Buffer);
    onnx[100] = (onnx[100] as number) ^ 0x80;
    const result = verifyVersion({ ...v2, onnx }, v1);
    expect(failure(result)).toBe('bytes-mismatch');
    expect(result.ok ? '' : result.reason).toContain(v2.modelSha256);
  });

  it('detects a field changed after publishing', () => {
    expect(failure(verifyVersion({ ...v2, metrics: { ...v2.metrics, holdoutAccuracy: 0.99 } }, v1))).toBe('record-hash-mismatch');
    expect(failure(verifyVersion({ ...v2, version: 'x' }, v1))).toBe('record-hash-mismatch');
    expect(failure(verifyVersion({ ...v2, recordHash: '0'.repeat(64) }, v1))).toBe('record-hash-mismatch');
  });

  it('detects a wrong prevRecordHash, a wrong sequence and a foreign previous version', () => {
    const wrongPrev = buildVersion(input({ onnx: bytesB }), { ...v1, recordHash: 'a'.repeat(64) });
    expect(failure(verifyVersion(wrongPrev, v1))).toBe('chain-broken');
    expect(failure(verifyVersion(v2, undefined))).toBe('chain-broken');
    const resequenced = { ...v2, sequence: 5 };
    resequenced.recordHash = computeRecordHash(resequenced);
    expect(failure(verifyVersion(resequenced, v1))).toBe('sequence');
    const other = buildVersion(input({ category: 'other' }), undefined);
    expect(failure(verifyVersion(v2, other))).toBe('category-mismatch');
  });

  it('reads the bytes of a version stored by file:// URI', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sampleloop-ledger-uri-'));
    try {
      const file = join(dir, 'model.onnx');
      writeFileSync(file, bytesA);
      const byUri = buildVersion(input({ onnxUri: pathToFileURL(file).href }), undefined);
      expect(byUri.onnx).toBeNull();
      expect(byUri.modelSha256).toBe(sha256(bytesA));
      expect(verifyVersion(byUri, undefined)).toEqual({ ok: true });
      writeFileSync(file, bytesB);
      expect(failure(verifyVersion(byUri, undefined))).toBe('bytes-mismatch');
      rmSync(file);
      expect(failure(verifyVersion(byUri, undefined))).toBe('bytes-missing');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the ledger on the embedded log', () => {
  let dir: string;
  let log: EmbeddedLog;
  let access: LogAccess;
  let clock: number;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sampleloop-ledger-'));
    log = await EmbeddedLog.open(dir);
    access = directAccess(log, new LocalSchemaRegistry(rocksRegistryStorage(log.db)));
    clock = 1_750_000_000_000;
  });
  afterEach(async () => {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const publish = async (overrides: Partial<NewVersion> = {}, through: LogAccess = access): Promise<ModelVersion> =>
    (await publishVersion(through, input({ createdAt: clock++, ...overrides }))).record;

  const codes = async (): Promise<string[]> =>
    (await readLedger(access)).versions.map((v) => `${v.category}/${v.version?.version ?? '?'}#${v.version?.sequence ?? '?'}:${v.verification.ok ? 'ok' : v.verification.code}`);

  it('is empty before anything is published', async () => {
    const view = await readLedger(access);
    expect(view.versions).toEqual([]);
    expect(view.heads.size).toBe(0);
  });

  it('publishes Avro records keyed by category, in one uncompacted partition, and reads them back verified per category', async () => {
    const d1 = await publish();
    const c1 = await publish({ category: 'cancer', featureNames: ['f'], classes: ['x', 'y'], onnx: bytesB });
    const d2 = await publish({ onnx: bytesB, version: 'v-two' });
    expect(log.topic('models')).toEqual({ partitions: 1, compact: false, retentionMs: null });
    const raw = log.read('models', 0, 0, 10);
    expect(raw.map((r) => r.key?.toString())).toEqual(['digits', 'cancer', 'digits']);
    expect(raw.every((r) => r.value?.[0] === 0)).toBe(true); // Confluent framing
    const view = await readLedger(access);
    expect(view.failures).toEqual([]);
    expect([...view.byCategory.keys()]).toEqual(['digits', 'cancer']);
    expect(view.byCategory.get('digits')?.map((v) => v.version?.recordHash)).toEqual([d1.recordHash, d2.recordHash]);
    expect(view.heads.get('digits')?.recordHash).toBe(d2.recordHash);
    expect(view.heads.get('cancer')?.recordHash).toBe(c1.recordHash);
    expect(d2).toMatchObject({ sequence: 2, prevRecordHash: d1.recordHash });
    expect(c1).toMatchObject({ sequence: 1, prevRecordHash: '' });
    // what was read back is exactly what was built, bytes included
    const back = view.byCategory.get('digits')?.[1]?.version as ModelVersion;
    expect(back).toEqual({ ...d2, onnx: d2.onnx });
    // a writer schema id unknown to the reader: the body is read as this release's ModelVersion
    expect(decodeLedgerValue(raw[2]?.value ?? null, () => undefined)).toEqual(d2);
  });

  it('refuses a version label already used in the category', async () => {
    await publish({ version: 'a' });
    await expect(publish({ version: 'a', onnx: bytesB })).rejects.toThrow(/already has a version "a"/);
    expect(await codes()).toEqual(['digits/a#1:ok']);
  });

  it('writes JSON through an access without Avro (a running engine) with the same record hash, and verifies it', async () => {
    const { produceAvro: _unused, ...jsonOnly } = access;
    const viaJson = await publish({}, jsonOnly);
    const [raw] = log.read('models', 0, 0, 1);
    expect(raw?.value?.toString('utf8').startsWith('{')).toBe(true);
    expect(viaJson.recordHash).toBe(buildVersion(input({ createdAt: viaJson.createdAt }), undefined).recordHash);
    await publish({ onnx: bytesB });
    expect(await codes()).toEqual(['digits/1#1:ok', 'digits/2#2:ok']);
    expect(decodeLedgerValue(Buffer.from(JSON.stringify(ledgerJson(viaJson))), () => undefined)).toEqual(viaJson);
  });

  it('reports a stored version whose bytes changed; a later publish links to the last verified version', async () => {
    const v1 = await publish();
    const v2 = await publish({ onnx: bytesB });
    // rewrite v2 in place with one byte of its model flipped
    const [stored] = log.read('models', 0, 1, 1);
    const value = Buffer.from(stored?.value as Buffer);
    const at = value.indexOf(Buffer.from(bytesB)) + 321;
    value[at] = (value[at] as number) ^ 0x04;
    const { encodeEntry, recordKey, partitionPrefix, KEY_RECORD } = await import('../engine/embedded/log-codec.js');
    log.db.write([{ type: 'put', key: recordKey(partitionPrefix(KEY_RECORD, 'models', 0), 1), value: encodeEntry({ timestamp: stored?.timestamp ?? 0, key: stored?.key ?? null, value, headers: {} }) }]);
    expect(await codes()).toEqual(['digits/1#1:ok', 'digits/2#2:bytes-mismatch']);
    const published = await publishVersion(access, input({ createdAt: clock++, onnx: bytesB, version: '3' }));
    expect(published.failures.map((f) => f.offset)).toEqual([1]);
    expect(published.record).toMatchObject({ sequence: 2, prevRecordHash: v1.recordHash });
    expect(await codes()).toEqual(['digits/1#1:ok', 'digits/2#2:bytes-mismatch', 'digits/3#2:ok']);
    expect((await readLedger(access)).heads.get('digits')?.version).toBe('3');
    expect(v2.recordHash).not.toBe(published.record.recordHash);
  });

  it('fails a version that links to a version which failed, and an undecodable record, without breaking the chain', async () => {
    const v1 = await publish();
    const forged = buildVersion(input({ onnx: bytesB, createdAt: clock++ }), { ...v1, recordHash: 'b'.repeat(64) });
    await access.produceAvro?.('models', 'ModelVersion', [{ key: 'digits', value: forged, timestamp: clock }]);
    const follower = buildVersion(input({ createdAt: clock++, version: 'after-forged' }), forged);
    await access.produceAvro?.('models', 'ModelVersion', [{ key: 'digits', value: follower, timestamp: clock }]);
    log.append([{ topic: 'models', key: Buffer.from('digits'), value: Buffer.from([0x42, 0x00, 0x13]), timestamp: clock, headers: {} }]);
    await publish({ onnx: bytesB, version: 'good' });
    expect(await codes()).toEqual(['digits/1#1:ok', 'digits/2#2:chain-broken', 'digits/after-forged#3:chain-broken', 'digits/?#?:undecodable', 'digits/good#2:ok']);
  });

  it('serves an in-process trainer through ledgerClient', async () => {
    const client = ledgerClient(access);
    expect(await client.latest('digits')).toBeUndefined();
    const { recordHash: _r, prevRecordHash: _p, sequence: _s, ...unchained } = buildVersion(input(), undefined);
    const first = await client.publishVersion({ ...unchained, version: '7', trainingSnapshot: { topic: 'samples', offsets: [{ partition: 0, offset: 12 }], sampleCount: 12 } });
    expect(first.record).toMatchObject({ version: '7', sequence: 1, trainingSnapshot: { topic: 'samples', offsets: [{ partition: 0, offset: 12 }], sampleCount: 12 } });
    expect((await client.latest('digits'))?.recordHash).toBe(first.record.recordHash);
    await expect(client.publishVersion({ ...unchained, version: '8', modelSha256: 'c'.repeat(64) })).rejects.toThrow(/does not match the ONNX bytes/);
    expect(await codes()).toEqual(['digits/7#1:ok']);
  });
});
