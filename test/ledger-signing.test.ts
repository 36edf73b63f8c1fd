/**
 * Signed model versions: Ed25519 signatures over the record hash, the trust policy (unsigned,
 * bad-signature, untrusted-signer, per-category keys, allowUnsigned), key rotation, checkpoints, and
 * the predictor on the embedded log refusing what the policy refuses while the head keeps serving.
 */
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import avro from 'avsc';
import { afterEach, describe, expect, it } from 'vitest';
import { directAccess, type LogAccess } from '../access/embedded.js';
import { startEmbeddedApp, type EmbeddedApp } from '../app/embedded.js';
import { parseConfig } from '../config/config.js';
import { silentLogger } from '../engine/logger.js';
import { EngineMetrics } from '../engine/metrics.js';
import { loadDataset } from '../models/datasets/index.js';
import {
  buildCheckpoint,
  buildVersion,
  computeRecordHash,
  decodeLedgerValue,
  GENERATED_SIGNING_KEY_FILE,
  LedgerBook,
  ledgerKeysFor,
  loadSigner,
  publishVersion,
  signatureValid,
  signerFromPrivateKey,
  signVersion,
  trustPolicy,
  UNHASHED_FIELDS,
  verifyCheckpoint,
  verifyVersion,
  versionSigningMessage,
  writeKeyPair,
  type LedgerSigner,
  type NewVersion,
  type TrustPolicy,
} from '../models/ledger.js';
import { defaultTrainOptions, trainLogistic } from '../models/logistic-regression.js';
import { exportOnnx } from '../models/onnx-export.js';
import { schemaJson } from '../schemas/index.js';
import type { ModelVersion, Prediction } from '../schemas/types.js';

const digits = loadDataset('digits');
const small = digits.rows.slice(0, 200);
const bytesA = exportOnnx(trainLogistic(small, digits.featureNames, digits.classes, { ...defaultTrainOptions, maxIterations: 20 }), { version: '1', category: 'digits' });
const bytesB = exportOnnx(trainLogistic(digits.rows.slice(0, 120), digits.featureNames, digits.classes, { ...defaultTrainOptions, maxIterations: 30 }), { version: '2', category: 'digits' });
const T0 = 1_750_000_000_000;

const newSigner = (): LedgerSigner => signerFromPrivateKey(generateKeyPairSync('ed25519').privateKey);
const trainerKey = newSigner();
const teamKey = newSigner();
const strangerKey = newSigner();

function input(overrides: Partial<NewVersion> = {}): NewVersion {
  return { category: 'digits', onnx: bytesA, featureNames: digits.featureNames, classes: digits.classes, trainer: 'test', createdAt: T0, ...overrides };
}

const signed = (v: NewVersion, previous: ModelVersion | undefined, signer: LedgerSigner): ModelVersion => signVersion(buildVersion(v, previous), signer);
const outcome = (r: ReturnType<typeof verifyVersion>): string => (r.ok ? `ok:${r.signedBy}` : r.code);

/** The policy of a bank: the built-in trainer's key for every category, a team's key for "digits" only. */
const policy: TrustPolicy = trustPolicy([
  { name: 'trainer', publicKey: trainerKey.publicKey },
  { name: 'digits-team', publicKey: teamKey.publicKey, categories: ['digits'] },
]);

describe('Ed25519 signatures of versions', () => {
  it('are deterministic for a fixed key (RFC 8032 test vector 1, and the same signature for the same version twice)', () => {
    // RFC 8032, 7.1, TEST 1: secret key, public key, and the signature of the empty message.
    const seed = Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex');
    const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
    const signer = signerFromPrivateKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }));
    expect(Buffer.from(signer.publicKey, 'base64').toString('hex')).toBe('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
    expect(signer.sign(Buffer.alloc(0)).toString('hex')).toBe(
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
    );
    const v1 = buildVersion(input(), undefined);
    const again = signerFromPrivateKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }));
    expect(signVersion(v1, signer).signature).toBe(signVersion(v1, again).signature);
    expect(signVersion(v1, signer).signature).toBe(signer.sign(versionSigningMessage(v1.recordHash)).toString('base64'));
  });

  it('cover the record hash and are not covered by it: signing leaves recordHash unchanged', () => {
    const v1 = buildVersion(input(), undefined);
    const s1 = signVersion(v1, trainerKey);
    expect(s1.recordHash).toBe(v1.recordHash);
    expect(computeRecordHash(s1)).toBe(v1.recordHash);
    expect(signatureValid(s1.signer as string, versionSigningMessage(s1.recordHash), s1.signature as string)).toBe(true);
    expect(signatureValid(s1.signer as string, versionSigningMessage('0'.repeat(64)), s1.signature as string)).toBe(false);
  });

  it('writes a key pair with the private key readable by its owner only, and loads it back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sampleloop-keys-'));
    try {
      const written = writeKeyPair(join(dir, 'publisher.key'));
      expect(statSync(written.privateKeyFile).mode & 0o777).toBe(0o600);
      const loaded = loadSigner(written.privateKeyFile);
      expect(loaded.publicKey).toBe(written.publicKey);
      expect(loaded.keyId).toBe(written.keyId);
      expect(() => writeKeyPair(written.privateKeyFile)).toThrow(/EEXIST/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ModelVersion schema evolution', () => {
  it('reads a record written under the schema from before signing as unsigned, with the same record hash', () => {
    const schema = JSON.parse(schemaJson('ModelVersion')) as { fields: Array<{ name: string }> };
    schema.fields = schema.fields.filter((f) => !UNHASHED_FIELDS.includes(f.name));
    const before = avro.Type.forSchema(schema as avro.Schema, { wrapUnions: 'auto' });
    const { signer: _s, signature: _g, ...old } = buildVersion(input(), undefined);
    const registry = new Map([[41, before]]);
    const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, 41]), before.toBuffer(old)]);
    const read = decodeLedgerValue(framed, (id) => registry.get(id));
    expect(read).toMatchObject({ signer: null, signature: null, recordHash: old.recordHash });
    expect(computeRecordHash(read)).toBe(old.recordHash);
    expect(verifyVersion(read, undefined, { trust: policy })).toMatchObject({ ok: false, code: 'unsigned' });
  });
});

describe('the trust policy', () => {
  const v1 = signed(input(), undefined, trainerKey);

  it('accepts a version signed by a key trusted for its category, naming the key', () => {
    expect(outcome(verifyVersion(v1, undefined, { trust: policy }))).toBe('ok:trainer');
    expect(outcome(verifyVersion(signed(input({ onnx: bytesB }), v1, teamKey), v1, { trust: policy }))).toBe('ok:digits-team');
  });

  it('refuses unsigned, wrongly signed and untrusted-signer versions that are otherwise well-formed', () => {
    const unsigned = buildVersion(input({ onnx: bytesB }), v1);
    expect(verifyVersion(unsigned, v1)).toEqual({ ok: true }); // integrity alone is fine
    expect(verifyVersion(unsigned, v1, { trust: policy })).toMatchObject({ ok: false, code: 'unsigned' });

    // the trainer's public key, a signature by another key
    const forged = { ...unsigned, signer: trainerKey.publicKey, signature: strangerKey.sign(versionSigningMessage(unsigned.recordHash)).toString('base64') };
    expect(verifyVersion(forged, v1, { trust: policy })).toMatchObject({ ok: false, code: 'bad-signature' });
    // a genuine signature replayed onto another record
    const replayed = { ...unsigned, signer: v1.signer, signature: v1.signature };
    expect(verifyVersion(replayed, v1, { trust: policy })).toMatchObject({ ok: false, code: 'bad-signature' });
    // a field changed and the hash recomputed by someone without the key: the signature no longer matches
    const rehashed = { ...signed(input({ onnx: bytesB }), v1, trainerKey), metrics: { holdoutAccuracy: 0.99 } };
    expect(verifyVersion({ ...rehashed, recordHash: computeRecordHash(rehashed) }, v1, { trust: policy })).toMatchObject({ ok: false, code: 'bad-signature' });
    expect(verifyVersion({ ...unsigned, signer: trainerKey.publicKey }, v1, { trust: policy })).toMatchObject({ ok: false, code: 'bad-signature' });

    const stranger = signed(input({ onnx: bytesB }), v1, strangerKey);
    expect(verifyVersion(stranger, v1)).toEqual({ ok: true });
    expect(verifyVersion(stranger, v1, { trust: policy })).toMatchObject({ ok: false, code: 'untrusted-signer', reason: expect.stringContaining('does not list') as unknown });
  });

  it('limits a key to its categories', () => {
    const other = signed(input({ category: 'cancer' }), undefined, teamKey);
    expect(verifyVersion(other, undefined, { trust: policy })).toMatchObject({ ok: false, code: 'untrusted-signer', reason: expect.stringContaining('trusted for "digits", not for "cancer"') as unknown });
    expect(outcome(verifyVersion(signed(input({ category: 'cancer' }), undefined, trainerKey), undefined, { trust: policy }))).toBe('ok:trainer');
  });

  it('accepts unsigned versions only under allowUnsigned, and only until the category has a signed version', () => {
    const legacy = trustPolicy([{ name: 'trainer', publicKey: trainerKey.publicKey }], { allowUnsigned: true });
    const u1 = buildVersion(input(), undefined);
    const u2 = buildVersion(input({ onnx: bytesB }), u1);
    expect(outcome(verifyVersion(u1, undefined, { trust: legacy }))).toBe('ok:null');
    expect(outcome(verifyVersion(u2, u1, { trust: legacy }))).toBe('ok:null');
    const s3 = signed(input({ onnx: bytesA, version: 's3' }), u2, trainerKey);
    expect(outcome(verifyVersion(s3, u2, { trust: legacy }))).toBe('ok:trainer');
    const u4 = buildVersion(input({ onnx: bytesB, version: 'u4' }), s3);
    expect(verifyVersion(u4, s3, { trust: legacy })).toMatchObject({ ok: false, code: 'unsigned', reason: expect.stringContaining('once a category has a signed version') as unknown });
  });
});

describe('key rotation', () => {
  it('keeps the history signed by a retired key verifiable, and refuses what the retired key signs later or backdates', () => {
    const oldKey = newSigner();
    const newKey = newSigner();
    const v1 = signed(input({ createdAt: T0 }), undefined, oldKey);
    const v2 = signed(input({ onnx: bytesB, createdAt: T0 + 1000 }), v1, oldKey);
    const before = trustPolicy([{ name: 'old', publicKey: oldKey.publicKey }]);
    const retiredAt = T0 + 2000;
    const after = trustPolicy([
      { name: 'old', publicKey: oldKey.publicKey, retiredAt: new Date(retiredAt).toISOString() },
      { name: 'new', publicKey: newKey.publicKey },
    ]);
    const v3 = signed(input({ onnx: bytesA, createdAt: T0 + 3000 }), v2, newKey);
    const chain = (trust: TrustPolicy, versions: ModelVersion[]): string[] => {
      const book = new LedgerBook(trust);
      return versions.map((version, offset) => outcome(book.apply({ partition: 0, offset, timestamp: version.createdAt, key: 'digits', version }).verification));
    };
    expect(chain(before, [v1, v2])).toEqual(['ok:old', 'ok:old']);
    // the new key is trusted and the old one retired: the whole history still verifies
    expect(chain(after, [v1, v2, v3])).toEqual(['ok:old', 'ok:old', 'ok:new']);
    // the retired key cannot extend the history: neither with a new time nor backdated before its retirement
    const late = signed(input({ onnx: bytesB, createdAt: T0 + 4000 }), v3, oldKey);
    const backdated = signed(input({ onnx: bytesB, createdAt: T0 + 1500 }), v3, oldKey);
    const [, , , lateResult] = chain(after, [v1, v2, v3, late]);
    const [, , , backdatedResult] = chain(after, [v1, v2, v3, backdated]);
    expect([lateResult, backdatedResult]).toEqual(['untrusted-signer', 'untrusted-signer']);
    // a key removed from the policy (revoked, e.g. compromised) no longer vouches for anything it signed
    expect(chain(trustPolicy([{ name: 'new', publicKey: newKey.publicKey }]), [v1])).toEqual(['untrusted-signer']);
  });
});

describe('checkpoints', () => {
  const v1 = signed(input({ createdAt: T0 }), undefined, trainerKey);
  const v2 = signed(input({ onnx: bytesB, createdAt: T0 + 1 }), v1, trainerKey);
  const v3 = signed(input({ onnx: bytesA, createdAt: T0 + 2, version: 'three' }), v2, trainerKey);
  const c1 = signed(input({ category: 'cancer', createdAt: T0 }), undefined, trainerKey);
  const viewOf = (versions: ModelVersion[]) => {
    const book = new LedgerBook(policy);
    const byCategory = new Map<string, ReturnType<LedgerBook['apply']>[]>();
    versions.forEach((version, offset) => {
      const checked = book.apply({ partition: 0, offset, timestamp: 0, key: version.category, version });
      byCategory.set(checked.category, [...(byCategory.get(checked.category) ?? []), checked]);
    });
    return { heads: book.allHeads(), byCategory };
  };

  it('state each head signed, and a ledger that extends them verifies against them', () => {
    const checkpoint = buildCheckpoint(viewOf([v1, c1, v2]).heads, 'models', trainerKey, T0 + 10);
    expect(checkpoint.heads).toEqual([
      { category: 'cancer', sequence: 1, version: '1', recordHash: c1.recordHash, createdAt: T0 },
      { category: 'digits', sequence: 2, version: '2', recordHash: v2.recordHash, createdAt: T0 + 1 },
    ]);
    const same = verifyCheckpoint(checkpoint, viewOf([v1, c1, v2]), policy, 'models');
    expect(same).toMatchObject({ ok: true, problems: [] });
    const extended = verifyCheckpoint(checkpoint, viewOf([v1, c1, v2, v3]), policy, 'models');
    expect(extended.ok).toBe(true);
    expect(Object.fromEntries(extended.newer)).toEqual({ cancer: 0, digits: 1 });
  });

  it('detect a history rewritten consistently (re-signed with the trusted key) from an early version', () => {
    const checkpoint = buildCheckpoint(viewOf([v1, v2]).heads, 'models', trainerKey, T0 + 10);
    // v2 replaced by another model, then the chain continued: everything verifies on its own
    const r2 = signed(input({ onnx: bytesA, createdAt: T0 + 1, version: '2' }), v1, trainerKey);
    const r3 = signed(input({ onnx: bytesB, createdAt: T0 + 2, version: '3' }), r2, trainerKey);
    const rewritten = viewOf([v1, r2, r3]);
    expect([...rewritten.byCategory.values()].flat().every((c) => c.verification.ok)).toBe(true);
    const result = verifyCheckpoint(checkpoint, rewritten, policy, 'models');
    expect(result.ok).toBe(false);
    expect(result.problems).toEqual([expect.stringMatching(/^history-rewritten: the checkpoint's head digits version 2 \(sequence 2, .* differs from the ledger's version 2 at that sequence/)]);
    // truncated back to v1
    expect(verifyCheckpoint(checkpoint, viewOf([v1]), policy, 'models').problems).toEqual([expect.stringContaining('is not in the ledger: its verified chain of "digits" ends at sequence 1')]);
  });

  it('are refused when changed or signed by a key the policy does not trust', () => {
    const checkpoint = buildCheckpoint(viewOf([v1, v2]).heads, 'models', trainerKey, T0 + 10);
    const edited = { ...checkpoint, heads: checkpoint.heads.map((h) => ({ ...h, sequence: 1, recordHash: v1.recordHash })) };
    expect(verifyCheckpoint(edited, viewOf([v1, v2]), policy, 'models').problems).toEqual([expect.stringMatching(/^bad-signature: /)]);
    const foreign = buildCheckpoint(viewOf([v1, v2]).heads, 'models', strangerKey, T0 + 10);
    expect(verifyCheckpoint(foreign, viewOf([v1, v2]), policy, 'models').problems).toEqual([expect.stringMatching(/^untrusted-signer: /)]);
  });
});

describe('the predictor on the embedded log', () => {
  const dirs: string[] = [];
  afterEach(() => {
    while (dirs.length > 0) rmSync(dirs.pop() as string, { recursive: true, force: true });
  });

  async function engine(): Promise<{ app: EmbeddedApp; access: LogAccess; metrics: EngineMetrics; keys: ReturnType<typeof ledgerKeysFor> }> {
    const dataDir = mkdtempSync(join(tmpdir(), 'sampleloop-signing-'));
    dirs.push(dataDir);
    const config = parseConfig({ dataDir, log: { level: 'silent' }, privacy: { keyEnv: 'SAMPLELOOP_SIGNING_TEST_UNUSED_KEY' }, predictor: { enabled: true } });
    const metrics = new EngineMetrics();
    const app = await startEmbeddedApp(config, { logger: silentLogger(), metrics });
    // the default: the engine generated <dataDir>/model-signing.key and trusts it for every category
    expect(statSync(join(dataDir, GENERATED_SIGNING_KEY_FILE)).mode & 0o777).toBe(0o600);
    return { app, access: directAccess(app.log, app.registry), metrics, keys: ledgerKeysFor(config, { generate: false }) };
  }

  it('refuses appended unsigned, wrongly signed and untrusted-signer versions; the head keeps serving until a trusted version comes', async () => {
    const { app, access, metrics, keys } = await engine();
    try {
      const served: string[] = [];
      let n = 0;
      const predict = async (): Promise<void> => {
        const row = digits.rows[n] as { features: number[] };
        await access.produce('requests', JSON.stringify({ requestId: `r-${n++}`, category: 'digits', features: Object.fromEntries(digits.featureNames.map((f, j) => [f, row.features[j]])), timestamp: T0 + n }));
        await app.runtime.runUntilIdleAsync();
        const predictions = (await access.read('predictions')).map((r) => r.value as Prediction);
        served.push((predictions.at(-1) as Prediction).modelVersion);
      };
      const v1 = (await publishVersion(access, input({ version: 'v1' }), keys)).record;
      expect(v1.signer).toBe(keys.signer.publicKey);
      await predict();
      const append = async (version: ModelVersion): Promise<void> => {
        await access.produceAvro?.('models', 'ModelVersion', [{ key: 'digits', value: version, timestamp: version.createdAt }]);
        await predict();
      };
      const next = buildVersion(input({ onnx: bytesB, version: 'v2', createdAt: T0 + 5 }), v1);
      await append(next); // unsigned
      await append({ ...next, signer: keys.signer.publicKey, signature: strangerKey.sign(versionSigningMessage(next.recordHash)).toString('base64') }); // bad signature
      await append(signVersion(next, strangerKey)); // untrusted signer
      const event = (name: string): Promise<number> => metrics.total('events', { processor: 'predictor', event: name });
      expect(served).toEqual(['v1', 'v1', 'v1', 'v1']);
      expect(await event('model-refused')).toBe(3);
      expect([await event('model-refused-unsigned'), await event('model-refused-bad-signature'), await event('model-refused-untrusted-signer')]).toEqual([1, 1, 1]);
      const v2 = (await publishVersion(access, input({ onnx: bytesB, version: 'v2', createdAt: T0 + 6 }), keys)).record;
      expect(v2.prevRecordHash).toBe(v1.recordHash);
      await predict();
      expect(served.at(-1)).toBe('v2');
      expect(await event('model-loaded')).toBe(2);
    } finally {
      await app.close();
    }
  });
});
