import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../engine/errors.js';
import {
  PRIVACY_KEY_ENV,
  PrivacyPolicy,
  isToken,
  maskValue,
  protectRecordAttributes,
  resolvePrivacyKey,
  type PrivacyConfig,
} from '../processors/privacy.js';

const keyA = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
const keyB = Buffer.from('ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100', 'hex');

const config: PrivacyConfig = {
  alwaysSensitive: [
    { field: 'idNumber', action: 'tokenize' },
    { field: 'phone', action: 'mask', keepLast: 4 },
  ],
  categories: {
    loan: [{ field: 'name', action: 'tokenize' }],
    retail: [
      { field: 'name', action: 'mask', keepLast: 2 },
      { field: 'email', action: 'mask', keepLast: 3 },
      { field: 'phone', action: 'mask', keepLast: 2 },
    ],
    fraud: [{ field: 'email', action: 'tokenize' }],
  },
};

/** Reference token straight from the contract in docs/join-semantics.md. */
function referenceToken(key: Buffer, field: string, value: string): string {
  return `tok_${createHmac('sha256', key).update(`${field}\u0000${value}`).digest('base64url').slice(0, 22)}`;
}

const attributes = { idNumber: '110101199003074512', name: 'Zhang San', phone: '13800138000', email: 'z@x.cn', city: 'Beijing' };

describe('PrivacyPolicy', () => {
  it('tokenizes exactly as the contract says, deterministically per key', () => {
    const policy = new PrivacyPolicy(config, keyA);
    const out = policy.protect('loan', attributes);
    expect(out.idNumber).toBe(referenceToken(keyA, 'idNumber', attributes.idNumber));
    expect(out.name).toBe(referenceToken(keyA, 'name', attributes.name));
    expect(new PrivacyPolicy(config, Buffer.from(keyA)).protect('loan', attributes)).toEqual(out);
    expect(isToken(out.idNumber as string)).toBe(true);
  });

  it('matches the reference for long keys, unicode values and empty values', () => {
    const longKey = Buffer.alloc(100, 7);
    const policy = new PrivacyPolicy({ alwaysSensitive: [{ field: 'name', action: 'tokenize' }], categories: {} }, longKey);
    for (const v of ['张三', '', 'é'.repeat(300), '🙂 emoji']) {
      expect(policy.protect(null, { name: v }).name).toBe(referenceToken(longKey, 'name', v));
    }
  });

  it('gives different tokens for different keys and different fields', () => {
    const a = new PrivacyPolicy(config, keyA).protect('loan', attributes);
    const b = new PrivacyPolicy(config, keyB).protect('loan', attributes);
    expect(a.idNumber).not.toBe(b.idNumber);
    const sameValue = new PrivacyPolicy(config, keyA).protect('loan', { idNumber: 'X', name: 'X' });
    expect(sameValue.idNumber).not.toBe(sameValue.name);
  });

  it('token is category independent', () => {
    const policy = new PrivacyPolicy(config, keyA);
    expect(policy.protect('loan', attributes).idNumber).toBe(policy.protect('retail', attributes).idNumber);
  });

  it('is idempotent and never mutates its input', () => {
    const policy = new PrivacyPolicy(config, keyA);
    const input = { ...attributes };
    for (const category of ['loan', 'retail', 'fraud', null, 'nope']) {
      const once = policy.protect(category, input);
      expect(policy.protect(category, once)).toEqual(once);
      expect(once).not.toBe(input);
    }
    expect(input).toEqual(attributes);
  });

  it('masks keeping the last characters', () => {
    const policy = new PrivacyPolicy(config, keyA);
    expect(policy.protect('loan', attributes)).toMatchObject({ phone: '*******8000', city: 'Beijing', email: 'z@x.cn' });
    expect(maskValue('13800138000', 4)).toBe('*******8000');
    expect(maskValue('abc', 0)).toBe('***');
    expect(maskValue('abc', 3)).toBe('abc');
    expect(maskValue('ab', 4)).toBe('ab');
    expect(maskValue('', 2)).toBe('');
    expect(maskValue('a🙂b🙂', 2)).toBe('**b🙂');
  });

  it('uses the category rules plus alwaysSensitive, strictest per field', () => {
    const policy = new PrivacyPolicy(config, keyA);
    const retail = policy.protect('retail', attributes);
    expect(retail).toEqual({
      idNumber: referenceToken(keyA, 'idNumber', attributes.idNumber),
      name: '*******an',
      phone: '*********00',
      email: '***.cn',
      city: 'Beijing',
    });
    expect([...policy.sensitiveFields('retail')].sort()).toEqual(['email', 'idNumber', 'name', 'phone']);
    expect([...policy.sensitiveFields('loan')].sort()).toEqual(['idNumber', 'name', 'phone']);
  });

  it('unknown or null category uses the union of all rules, strictest action winning', () => {
    const policy = new PrivacyPolicy(config, keyA);
    const expected = {
      idNumber: referenceToken(keyA, 'idNumber', attributes.idNumber),
      name: referenceToken(keyA, 'name', attributes.name),
      phone: '*********00',
      email: referenceToken(keyA, 'email', attributes.email),
      city: 'Beijing',
    };
    expect(policy.protect(null, attributes)).toEqual(expected);
    expect(policy.protect('unheard-of', attributes)).toEqual(expected);
    expect([...policy.sensitiveFields(null)].sort()).toEqual(['email', 'idNumber', 'name', 'phone']);
  });

  it('leaves records without sensitive fields unchanged (as a copy)', () => {
    const policy = new PrivacyPolicy(config, keyA);
    const plain = { city: 'Paris', toString: 'x' };
    const out = policy.protect('loan', plain);
    expect(out).toEqual(plain);
    expect(out).not.toBe(plain);
  });

  it('needs a key only when something is tokenized', () => {
    const maskOnly: PrivacyConfig = { alwaysSensitive: [{ field: 'phone', action: 'mask', keepLast: 2 }], categories: {} };
    const policy = new PrivacyPolicy(maskOnly, null);
    expect(policy.requiresKey()).toBe(false);
    expect(policy.protect(null, { phone: '1234' })).toEqual({ phone: '**34' });
    expect(new PrivacyPolicy(config, keyA).requiresKey()).toBe(true);
    expect(() => new PrivacyPolicy(config, null)).toThrow(ConfigError);
    expect(() => new PrivacyPolicy(config, Buffer.alloc(8))).toThrow(/at least 16/);
  });

  it('rejects invalid rules', () => {
    expect(() => new PrivacyPolicy({ alwaysSensitive: [{ field: 'p', action: 'mask', keepLast: -1 }], categories: {} }, null)).toThrow(ConfigError);
    expect(() => new PrivacyPolicy({ alwaysSensitive: [{ field: '', action: 'tokenize' }], categories: {} }, keyA)).toThrow(ConfigError);
    expect(() => new PrivacyPolicy({ alwaysSensitive: [{ field: 'p', action: 'hash' } as never], categories: {} }, keyA)).toThrow(ConfigError);
  });

  it('protectRecordAttributes protects a record copy using its category', () => {
    const policy = new PrivacyPolicy(config, keyA);
    const record = { requestId: 'r', category: 'retail', attributes: { name: 'Zhang San' } };
    const out = protectRecordAttributes(policy, record);
    expect(out).toEqual({ requestId: 'r', category: 'retail', attributes: { name: '*******an' } });
    expect(record.attributes.name).toBe('Zhang San');
    const noCategory = protectRecordAttributes(policy, { attributes: { name: 'Zhang San' } });
    expect(noCategory.attributes.name).toBe(referenceToken(keyA, 'name', 'Zhang San'));
    const noAttributes: { requestId: string; attributes?: Record<string, string> } = { requestId: 'r' };
    expect(protectRecordAttributes(policy, noAttributes)).toBe(noAttributes);
  });
});

describe('isToken', () => {
  it('recognizes only well-formed tokens', () => {
    expect(isToken(referenceToken(keyA, 'f', 'v'))).toBe(true);
    expect(isToken('tok_short')).toBe(false);
    expect(isToken('tok_AAAAAAAAAAAAAAAAAAAAA$')).toBe(false);
    expect(isToken('xtok_AAAAAAAAAAAAAAAAAAAAAA')).toBe(false);
  });
});

describe('resolvePrivacyKey', () => {
  const envVar = 'SL_TEST_PRIVACY_KEY';
  let dir: string;
  let savedDefault: string | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sl-privacy-'));
    savedDefault = process.env[PRIVACY_KEY_ENV];
    delete process.env[PRIVACY_KEY_ENV];
    delete process.env[envVar];
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
    delete process.env[envVar];
    if (savedDefault === undefined) delete process.env[PRIVACY_KEY_ENV];
    else process.env[PRIVACY_KEY_ENV] = savedDefault;
  });

  it('prefers the environment variable (hex or base64) over the key file and the data dir', () => {
    const keyFile = join(dir, 'key');
    writeFileSync(keyFile, keyB.toString('hex'));
    process.env[envVar] = keyA.toString('hex');
    expect(resolvePrivacyKey({ envVar, keyFile, dataDir: dir, allowGenerate: true })).toEqual({ key: keyA, source: 'env' });
    process.env[envVar] = keyA.toString('base64');
    expect(resolvePrivacyKey({ envVar, keyFile, allowGenerate: false }).key.equals(keyA)).toBe(true);
    process.env[PRIVACY_KEY_ENV] = keyB.toString('base64url');
    expect(resolvePrivacyKey({ allowGenerate: false })).toEqual({ key: keyB, source: 'env' });
  });

  it('rejects a short or malformed key in the environment', () => {
    process.env[envVar] = 'abcd';
    expect(() => resolvePrivacyKey({ envVar, allowGenerate: false })).toThrow(/at least 16/);
    process.env[envVar] = 'not a key!';
    expect(() => resolvePrivacyKey({ envVar, allowGenerate: false })).toThrow(ConfigError);
    expect(() => resolvePrivacyKey({ envVar: keyA.toString('base64'), allowGenerate: false })).toThrow(/not a valid variable name/);
  });

  it('reads the key file (hex text or raw bytes) before generating', () => {
    const hexFile = join(dir, 'hex.key');
    writeFileSync(hexFile, `${keyB.toString('hex')}\n`);
    expect(resolvePrivacyKey({ envVar, keyFile: hexFile, dataDir: dir, allowGenerate: true })).toEqual({ key: keyB, source: 'file' });
    const rawFile = join(dir, 'raw.key');
    const raw = Buffer.from([0xff, 0x00, 0x10, 0x80, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    writeFileSync(rawFile, raw);
    expect(resolvePrivacyKey({ envVar, keyFile: rawFile, allowGenerate: false }).key.equals(raw)).toBe(true);
    expect(() => resolvePrivacyKey({ envVar, keyFile: join(dir, 'missing.key'), dataDir: dir, allowGenerate: true })).toThrow(/does not exist/);
  });

  it('generates <dataDir>/privacy.key with mode 0600 once, then reuses it', () => {
    const dataDir = join(dir, 'data');
    const first = resolvePrivacyKey({ envVar, dataDir, allowGenerate: true });
    expect(first.source).toBe('generated');
    expect(first.key.length).toBe(32);
    const file = join(dataDir, 'privacy.key');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8').trim()).toBe(first.key.toString('hex'));
    const second = resolvePrivacyKey({ envVar, dataDir, allowGenerate: true });
    expect(second.key.equals(first.key)).toBe(true);
  });

  it('throws a ConfigError naming what to set when no key is available', () => {
    expect(() => resolvePrivacyKey({ envVar, dataDir: dir, allowGenerate: false })).toThrow(ConfigError);
    expect(() => resolvePrivacyKey({ allowGenerate: true })).toThrow(/SAMPLELOOP_PRIVACY_KEY.*privacy\.keyFile/);
  });
});

describe('PrivacyPolicy.protectRaw: raw bytes a dead letter carries', () => {
  const raw = Buffer.from('{"requestId": "r-1", "attributes": {"phone": "+44 7700 900123"}, "feat');
  const maskOnly: PrivacyConfig = { alwaysSensitive: [{ field: 'phone', action: 'mask', keepLast: 4 }], categories: {} };

  it('seals them with the key (openSealed gives the exact bytes back)', () => {
    const policy = new PrivacyPolicy(maskOnly, keyA);
    const out = policy.protectRaw(raw);
    expect(out?.encoding).toBe('sealed');
    expect(out?.payload.includes(Buffer.from('7700'))).toBe(false);
    expect(policy.openSealed(out!.payload)).toEqual(raw);
  });

  it('withholds them (no bytes) when rules name sensitive attributes but there is no key to seal with', () => {
    expect(new PrivacyPolicy(maskOnly, null).protectRaw(raw)).toEqual({ payload: Buffer.alloc(0), encoding: 'withheld' });
  });

  it('leaves them in clear (null) when no rule names any sensitive attribute', () => {
    expect(new PrivacyPolicy({ alwaysSensitive: [], categories: {} }, null).protectRaw(raw)).toBeNull();
  });
});
