/**
 * The trust policy: which publishers' keys may sign versions of which categories
 * (docs/model-cluster.md, "Trust policy"). A version is served only when it verifies and its signer
 * is trusted for its category; unsigned versions only under `allowUnsigned`, and only while their
 * category has no signed version (signing a category is one-way).
 */
import type { ModelVersion } from '../../schemas/types.js';
import { LedgerError } from './record.js';
import { keyIdOf, parsePublicKey, rawPublicKeyBase64, signatureValid, versionSigningMessage } from './signing.js';

export interface TrustedKeySpec {
  /** Who holds the key, shown in logs and `models verify` (e.g. "trainer", "risk-team"). */
  name: string;
  /** Base64 of the 32 raw bytes, or PEM. */
  publicKey: string;
  /** Categories it may publish ("*" = every category); default ["*"]. */
  categories?: readonly string[];
  /**
   * When the key was retired (epoch ms or ISO-8601 time): versions it signed that were created up to
   * then keep verifying, later ones are refused (untrusted-signer).
   */
  retiredAt?: number | string;
}

export interface TrustedKey {
  name: string;
  /** Base64 of the 32 raw bytes (as in a record's `signer`). */
  publicKey: string;
  keyId: string;
  categories: readonly string[];
  retiredAt?: number;
}

export interface TrustPolicy {
  keys: readonly TrustedKey[];
  /** Accept unsigned versions of categories that have no signed version yet (ledgers from before signing). */
  allowUnsigned: boolean;
}

export type TrustCode = 'unsigned' | 'untrusted-signer' | 'bad-signature';

export type TrustCheck = { ok: true; key: TrustedKey | null } | { ok: false; code: TrustCode; reason: string };

export function trustedKey(spec: TrustedKeySpec): TrustedKey {
  const publicKey = rawPublicKeyBase64(parsePublicKey(spec.publicKey));
  const categories = spec.categories && spec.categories.length > 0 ? [...spec.categories] : ['*'];
  const key: TrustedKey = { name: spec.name, publicKey, keyId: keyIdOf(publicKey), categories };
  if (spec.retiredAt !== undefined) key.retiredAt = parseTime(spec.retiredAt, `retiredAt of trusted key "${spec.name}"`);
  return key;
}

export function trustPolicy(specs: readonly TrustedKeySpec[], options: { allowUnsigned?: boolean } = {}): TrustPolicy {
  return { keys: specs.map(trustedKey), allowUnsigned: options.allowUnsigned ?? false };
}

function parseTime(value: number | string, what: string): number {
  const ms = typeof value === 'number' ? value : Date.parse(value);
  if (!Number.isFinite(ms)) throw new LedgerError(`${what}: not an epoch-millisecond or ISO-8601 time: ${JSON.stringify(value)}`);
  return ms;
}

export function isSigned(record: Pick<ModelVersion, 'signer' | 'signature'>): boolean {
  return (record.signer ?? '') !== '' || (record.signature ?? '') !== '';
}

/**
 * Checks who signed `record` (whose record hash is already verified) against the policy; `previous`
 * is its category's head. Rules, first failing one reported: a signature is present (else
 * `unsigned`, unless allowed), it verifies under `signer` (`bad-signature`), and `signer` is a key
 * the policy trusts for the category, not retired before the version was created nor before the
 * head was (`untrusted-signer`).
 */
export function checkTrust(record: ModelVersion, previous: ModelVersion | undefined, policy: TrustPolicy): TrustCheck {
  const signer = record.signer ?? '';
  const signature = record.signature ?? '';
  if (signer === '' && signature === '') {
    if (policy.allowUnsigned && (previous === undefined || !isSigned(previous))) return { ok: true, key: null };
    return {
      ok: false,
      code: 'unsigned',
      reason:
        previous !== undefined && isSigned(previous)
          ? `the version is not signed, and the version it follows is: once a category has a signed version it accepts only signed ones`
          : 'the version is not signed (models.trust.allowUnsigned is off)',
    };
  }
  if (signer === '' || signature === '') return { ok: false, code: 'bad-signature', reason: signer === '' ? 'the version has a signature but no signer' : 'the version names a signer but has no signature' };
  const keyId = safeKeyId(signer);
  if (!signatureValid(signer, versionSigningMessage(record.recordHash), signature)) {
    return { ok: false, code: 'bad-signature', reason: `the signature does not verify under the signer's key ${keyId} for recordHash ${record.recordHash}` };
  }
  const entries = policy.keys.filter((k) => k.publicKey === signer);
  if (entries.length === 0) return { ok: false, code: 'untrusted-signer', reason: `signed by key ${keyId}, which the trust policy (models.trust.keys) does not list` };
  let reason = '';
  for (const key of entries) {
    if (!key.categories.includes('*') && !key.categories.includes(record.category)) {
      reason ||= `key "${key.name}" (${keyId}) is trusted for ${key.categories.map((c) => `"${c}"`).join(', ')}, not for "${record.category}"`;
      continue;
    }
    if (key.retiredAt !== undefined && record.createdAt > key.retiredAt) {
      reason = `key "${key.name}" (${keyId}) was retired at ${iso(key.retiredAt)}; this version was created at ${iso(record.createdAt)}`;
      continue;
    }
    if (key.retiredAt !== undefined && previous !== undefined && previous.createdAt > key.retiredAt) {
      reason = `key "${key.name}" (${keyId}) was retired at ${iso(key.retiredAt)}, before the version this one follows was created (${iso(previous.createdAt)}): a retired key cannot extend the history`;
      continue;
    }
    return { ok: true, key };
  }
  return { ok: false, code: 'untrusted-signer', reason };
}

function safeKeyId(publicKey: string): string {
  try {
    return keyIdOf(publicKey);
  } catch {
    return '(malformed key)';
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
