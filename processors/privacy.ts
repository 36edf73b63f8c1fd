import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, errorMessage } from '../engine/errors.js';

export type FieldRule = { field: string; action: 'tokenize' } | { field: string; action: 'mask'; keepLast: number };

export interface PrivacyConfig {
  /** Rules applied in every category. */
  alwaysSensitive: FieldRule[];
  /** Extra rules per category name. */
  categories: Record<string, FieldRule[]>;
}

export const PRIVACY_KEY_ENV = 'SAMPLELOOP_PRIVACY_KEY';
export const GENERATED_KEY_FILE = 'privacy.key';
const MIN_KEY_BYTES = 16;
const TOKEN_PREFIX = 'tok_';
const TOKEN_CHARS = 22;
const TOKEN_PATTERN = /^tok_[A-Za-z0-9_-]{22}$/;
const SURROGATE = /[\uD800-\uDFFF]/;

/** True for values produced by tokenization (they are never tokenized again). */
export function isToken(value: string): boolean {
  return value.length === TOKEN_PREFIX.length + TOKEN_CHARS && TOKEN_PATTERN.test(value);
}

/** Keeps the last `keepLast` characters (code points) and replaces the others by `*`. Idempotent. */
export function maskValue(value: string, keepLast: number): string {
  if (!SURROGATE.test(value)) {
    if (value.length <= keepLast) return value;
    return '*'.repeat(value.length - keepLast) + value.slice(value.length - keepLast);
  }
  const chars = Array.from(value);
  if (chars.length <= keepLast) return value;
  return '*'.repeat(chars.length - keepLast) + chars.slice(chars.length - keepLast).join('');
}

interface CompiledRule {
  field: string;
  /** null for mask rules. */
  tokenizer: FieldTokenizer | null;
  keepLast: number;
}

interface CompiledRules {
  rules: readonly CompiledRule[];
  fields: ReadonlySet<string>;
}

/** Raw bytes as a dead letter carries them: encrypted, or withheld (empty) when there is no key to seal with. */
export interface ProtectedPayload {
  payload: Buffer;
  encoding: 'sealed' | 'withheld';
}

/**
 * Protects sensitive attributes (see docs/join-semantics.md, "Privacy"). Rules are merged and compiled
 * per category once, at construction; `protect` only walks the compiled list.
 */
export class PrivacyPolicy {
  private readonly byCategory = new Map<string, CompiledRules>();
  private readonly anyCategory: CompiledRules;
  private readonly needsKey: boolean;
  private readonly sealKey: Buffer | null;
  private readonly rulesExist: boolean;

  constructor(config: PrivacyConfig, key: Buffer | null) {
    const allRules = [...config.alwaysSensitive, ...Object.values(config.categories).flat()];
    allRules.forEach(checkRule);
    this.needsKey = allRules.some((rule) => rule.action === 'tokenize');
    this.rulesExist = allRules.length > 0;
    if (this.needsKey && key === null) {
      throw new ConfigError(`privacy rules tokenize attributes but no privacy key was given: ${HOW_TO_SET_KEY}`);
    }
    if (key !== null && key.length < MIN_KEY_BYTES) {
      throw new ConfigError(`the privacy key is ${key.length} bytes; it must be at least ${MIN_KEY_BYTES}`);
    }
    const ownKey = key === null ? null : Buffer.from(key);
    this.sealKey = ownKey === null ? null : createHmac('sha256', ownKey).update('sampleloop dead-letter seal v1').digest();
    const tokenizers = new Map<string, FieldTokenizer>();
    const compile = (rules: readonly FieldRule[]): CompiledRules => {
      const strictest = strictestPerField(rules);
      return {
        fields: new Set(strictest.keys()),
        rules: [...strictest.values()].map((rule) => ({
          field: rule.field,
          tokenizer: rule.action === 'tokenize' ? tokenizerFor(tokenizers, ownKey as Buffer, rule.field) : null,
          keepLast: rule.action === 'mask' ? rule.keepLast : 0,
        })),
      };
    };
    for (const [category, rules] of Object.entries(config.categories)) {
      this.byCategory.set(category, compile([...config.alwaysSensitive, ...rules]));
    }
    this.anyCategory = compile(allRules);
  }

  /** A copy of `attributes` with sensitive fields protected; null or unconfigured categories get every category's rules. */
  protect(category: string | null, attributes: Record<string, string>): Record<string, string> {
    const { rules } = this.rulesFor(category);
    const out = { ...attributes };
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i] as CompiledRule;
      const value = out[rule.field];
      if (typeof value !== 'string' || !Object.hasOwn(out, rule.field)) continue;
      out[rule.field] = rule.tokenizer !== null ? rule.tokenizer.tokenize(value) : maskValue(value, rule.keepLast);
    }
    return out;
  }

  /**
   * Encrypts bytes that could not be parsed (so their sensitive values cannot be found and
   * protected) with AES-256-GCM under a key derived from the privacy key: the dead letter keeps
   * the original bytes, recoverable by whoever holds the key (`openSealed`), never in clear.
   * Layout: "SLSEAL1" | 12-byte nonce | ciphertext | 16-byte tag. Null when no key is configured.
   */
  seal(bytes: Buffer): Buffer | null {
    if (this.sealKey === null) return null;
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.sealKey, nonce);
    const body = Buffer.concat([cipher.update(bytes), cipher.final()]);
    return Buffer.concat([SEAL_MAGIC, nonce, body, cipher.getAuthTag()]);
  }

  /**
   * What a dead letter may carry of raw input bytes whose sensitive values cannot be located: sealed
   * with the key; withheld (no bytes) when rules name sensitive attributes but no key is configured to
   * seal with (mask rules alone need none); null when no rule names any (the bytes hold nothing
   * sensitive by the configuration and may stay in clear).
   */
  protectRaw(bytes: Buffer): ProtectedPayload | null {
    const sealed = this.seal(bytes);
    if (sealed !== null) return { payload: sealed, encoding: 'sealed' };
    return this.rulesExist ? { payload: Buffer.alloc(0), encoding: 'withheld' } : null;
  }

  /** Decrypts what `seal` produced; throws when the bytes were not sealed with this key. */
  openSealed(sealed: Buffer): Buffer {
    if (this.sealKey === null) throw new ConfigError(`no privacy key configured: ${HOW_TO_SET_KEY}`);
    if (!isSealed(sealed)) throw new ConfigError('these bytes are not a sealed dead-letter payload');
    const nonce = sealed.subarray(SEAL_MAGIC.length, SEAL_MAGIC.length + 12);
    const tag = sealed.subarray(sealed.length - 16);
    const body = sealed.subarray(SEAL_MAGIC.length + 12, sealed.length - 16);
    const decipher = createDecipheriv('aes-256-gcm', this.sealKey, nonce);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(body), decipher.final()]);
  }

  requiresKey(): boolean {
    return this.needsKey;
  }

  sensitiveFields(category: string | null): ReadonlySet<string> {
    return this.rulesFor(category).fields;
  }

  private rulesFor(category: string | null): CompiledRules {
    return (category === null ? undefined : this.byCategory.get(category)) ?? this.anyCategory;
  }
}

/** `record` with its attributes protected (same object when it has none). */
export function protectRecordAttributes<T extends { category?: string; attributes?: Record<string, string> }>(
  policy: PrivacyPolicy,
  record: T,
): T {
  if (record.attributes === undefined) return record;
  return { ...record, attributes: policy.protect(record.category ?? null, record.attributes) };
}

/** tok_ + base64url(HMAC-SHA-256(key, field + "\u0000" + value))[0..22], idempotent. */
class FieldTokenizer {
  private readonly prefix: string;

  constructor(
    private readonly key: Buffer,
    field: string,
  ) {
    this.prefix = `${field}\u0000`;
  }

  tokenize(value: string): string {
    if (isToken(value)) return value;
    return TOKEN_PREFIX + createHmac('sha256', this.key).update(this.prefix + value, 'utf8').digest('base64url').slice(0, TOKEN_CHARS);
  }
}

function tokenizerFor(cache: Map<string, FieldTokenizer>, key: Buffer, field: string): FieldTokenizer {
  let tokenizer = cache.get(field);
  if (tokenizer === undefined) {
    tokenizer = new FieldTokenizer(key, field);
    cache.set(field, tokenizer);
  }
  return tokenizer;
}

function checkRule(rule: FieldRule): void {
  const field: unknown = rule.field;
  const action: unknown = rule.action;
  if (typeof field !== 'string' || field.length === 0 || field === '__proto__') {
    throw new ConfigError(`privacy rule has an invalid field name ${JSON.stringify(field)}`);
  }
  if (action !== 'tokenize' && action !== 'mask') {
    throw new ConfigError(`privacy rule for "${field}": action must be "tokenize" or "mask", got ${JSON.stringify(action)}`);
  }
  if (rule.action === 'mask' && (!Number.isInteger(rule.keepLast) || rule.keepLast < 0)) {
    throw new ConfigError(`privacy rule for "${field}": keepLast must be an integer >= 0, got ${String(rule.keepLast)}`);
  }
}

/** Tokenize beats mask (it reveals no character); between masks, the one keeping fewer characters wins. */
function strictestPerField(rules: readonly FieldRule[]): Map<string, FieldRule> {
  const byField = new Map<string, FieldRule>();
  for (const rule of rules) {
    const current = byField.get(rule.field);
    if (current === undefined || strictness(rule) > strictness(current)) byField.set(rule.field, rule);
  }
  return byField;
}

function strictness(rule: FieldRule): number {
  return rule.action === 'tokenize' ? Number.POSITIVE_INFINITY : -rule.keepLast;
}

const HOW_TO_SET_KEY =
  `set the environment variable ${PRIVACY_KEY_ENV} (or the one named by privacy.keyEnv) to a random key of at least ` +
  `${MIN_KEY_BYTES} bytes, hex or base64 (e.g. \`openssl rand -hex 32\`), or set privacy.keyFile to a file holding such a key`;

export interface PrivacyKeyOptions {
  /** Name of the environment variable holding the key; default SAMPLELOOP_PRIVACY_KEY. */
  envVar?: string;
  /** File holding the key (hex or base64 text, or raw bytes). */
  keyFile?: string;
  /** Data directory where `privacy.key` is kept when generating is allowed. */
  dataDir?: string;
  /** Whether a missing key may be generated into `<dataDir>/privacy.key`. */
  allowGenerate: boolean;
}

/**
 * Finds the privacy key: the environment variable, else `keyFile`, else (when allowed) `<dataDir>/privacy.key`,
 * created with mode 0600 when missing (source `generated` whether created now or by an earlier run).
 */
export function resolvePrivacyKey(opts: PrivacyKeyOptions): { key: Buffer; source: 'env' | 'file' | 'generated' } {
  const envName = opts.envVar ?? PRIVACY_KEY_ENV;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(envName)) {
    throw new ConfigError(`privacy key environment variable name ${JSON.stringify(envName)} is not a valid variable name (give the name, not the key)`);
  }
  const envValue = process.env[envName]?.trim();
  if (envValue !== undefined && envValue !== '') {
    return { key: parseKeyText(envValue, `environment variable ${envName}`) ?? invalidKey(`environment variable ${envName}`), source: 'env' };
  }
  if (opts.keyFile !== undefined && opts.keyFile !== '') {
    if (!existsSync(opts.keyFile)) {
      throw new ConfigError(`privacy key file ${opts.keyFile} (privacy.keyFile) does not exist; create it (e.g. \`openssl rand -hex 32 > ${opts.keyFile}\`) or fix the path`);
    }
    return { key: readKeyFile(opts.keyFile), source: 'file' };
  }
  if (opts.allowGenerate && opts.dataDir !== undefined && opts.dataDir !== '') {
    return { key: readOrCreateGeneratedKey(join(opts.dataDir, GENERATED_KEY_FILE)), source: 'generated' };
  }
  const generateHint = opts.allowGenerate ? ' (a key is generated only when a data directory is configured)' : '';
  throw new ConfigError(`no privacy key: ${HOW_TO_SET_KEY}${generateHint}`);
}

function readOrCreateGeneratedKey(file: string): Buffer {
  if (existsSync(file)) return readKeyFile(file);
  const key = randomBytes(32);
  try {
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, `${key.toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readKeyFile(file);
    throw new ConfigError(`cannot create privacy key file ${file}: ${errorMessage(err)}; ${HOW_TO_SET_KEY}`, { cause: err });
  }
  return key;
}

/** The key a privacy key file holds (hex or base64 text, or raw bytes); ConfigError when unreadable or invalid. */
export function readPrivacyKeyFile(file: string): Buffer {
  return readKeyFile(file);
}

function readKeyFile(file: string): Buffer {
  let content: Buffer;
  try {
    content = readFileSync(file);
  } catch (err) {
    throw new ConfigError(`cannot read privacy key file ${file}: ${errorMessage(err)}`, { cause: err });
  }
  const fromText = parseKeyText(content.toString('utf8').trim(), `key file ${file}`);
  if (fromText !== undefined) return fromText;
  if (content.length >= MIN_KEY_BYTES) return content;
  return invalidKey(`key file ${file}`);
}

/** Hex (checked first) or base64 / base64url text; undefined when the text is neither. Throws when too short. */
function parseKeyText(text: string, where: string): Buffer | undefined {
  let key: Buffer;
  if (text.length % 2 === 0 && /^[0-9a-fA-F]+$/.test(text)) key = Buffer.from(text, 'hex');
  else if (/^[A-Za-z0-9+/]+={0,2}$/.test(text) || /^[A-Za-z0-9_-]+$/.test(text)) key = Buffer.from(text, 'base64');
  else return undefined;
  if (key.length < MIN_KEY_BYTES) {
    throw new ConfigError(`the privacy key in ${where} is ${key.length} bytes; it must be at least ${MIN_KEY_BYTES} (e.g. \`openssl rand -hex 32\`)`);
  }
  return key;
}

function invalidKey(where: string): never {
  throw new ConfigError(`the privacy key in ${where} is neither hex nor base64; ${HOW_TO_SET_KEY}`);
}

const SEAL_MAGIC = Buffer.from('SLSEAL1', 'latin1');

export function isSealed(bytes: Buffer): boolean {
  return bytes.length >= SEAL_MAGIC.length + 28 && bytes.subarray(0, SEAL_MAGIC.length).equals(SEAL_MAGIC);
}
