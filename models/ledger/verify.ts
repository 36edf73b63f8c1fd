/** Checking one ModelVersion against its category's previous verified version (docs/model-cluster.md, verification rules). */
import { errorMessage } from '../../engine/errors.js';
import type { ModelVersion } from '../../schemas/types.js';
import { computeRecordHash, modelBytes, sha256Hex } from './record.js';
import { checkTrust, type TrustCode, type TrustPolicy } from './trust.js';

export type VerifyCode =
  | 'undecodable'
  | 'bytes-missing'
  | 'bytes-mismatch'
  | 'record-hash-mismatch'
  | 'chain-broken'
  | 'sequence'
  | 'category-mismatch'
  | 'duplicate-version'
  | TrustCode;

/** `signedBy`: with a trust policy, the name of the trusted key that signed the version (null: unsigned, allowed). */
export type Verification = { ok: true; signedBy?: string | null } | { ok: false; code: VerifyCode; reason: string };

/**
 * Checks one version against the category's previous verified version: the ONNX bytes hash to
 * `modelSha256`, the record hashes to `recordHash`, `prevRecordHash` links to the previous version and
 * `sequence` follows it; with `trust`, that its signer is trusted for its category (trust.ts). `bytes`
 * saves re-reading an onnxUri the caller already read. Without `trust`, only integrity is checked.
 */
export function verifyVersion(record: ModelVersion, previous: ModelVersion | undefined, options: { bytes?: Uint8Array; trust?: TrustPolicy } = {}): Verification {
  if (previous !== undefined && previous.category !== record.category) {
    return fail('category-mismatch', `version belongs to category "${record.category}" but is checked against a version of "${previous.category}"`);
  }
  let bytes: Uint8Array;
  try {
    bytes = options.bytes ?? modelBytes(record);
  } catch (err) {
    return fail('bytes-missing', errorMessage(err));
  }
  const actualSha = sha256Hex(bytes);
  if (actualSha !== record.modelSha256) {
    return fail('bytes-mismatch', `the ONNX bytes hash to ${actualSha} but the record says modelSha256 = ${record.modelSha256}`);
  }
  let actualHash: string;
  try {
    actualHash = computeRecordHash(record);
  } catch (err) {
    return fail('record-hash-mismatch', errorMessage(err));
  }
  if (actualHash !== record.recordHash) {
    return fail('record-hash-mismatch', `the record's fields hash to ${actualHash} but recordHash = ${record.recordHash || '""'} (the record was changed after it was published)`);
  }
  const expectedPrev = previous?.recordHash ?? '';
  if (record.prevRecordHash !== expectedPrev) {
    return fail(
      'chain-broken',
      previous === undefined
        ? `first version of "${record.category}" must have prevRecordHash "" but has ${record.prevRecordHash}`
        : `prevRecordHash ${record.prevRecordHash || '""'} does not link to the previous verified version ${previous.version} (sequence ${previous.sequence}, recordHash ${previous.recordHash})`,
    );
  }
  const expectedSequence = (previous?.sequence ?? 0) + 1;
  if (record.sequence !== expectedSequence) {
    return fail('sequence', `sequence is ${record.sequence}, expected ${expectedSequence}`);
  }
  if (options.trust === undefined) return { ok: true };
  const trust = checkTrust(record, previous, options.trust);
  if (!trust.ok) return fail(trust.code, trust.reason);
  return { ok: true, signedBy: trust.key?.name ?? null };
}

export function fail(code: VerifyCode, reason: string): Verification {
  return { ok: false, code, reason };
}

