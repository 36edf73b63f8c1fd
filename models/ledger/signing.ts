/**
 * Ed25519 keys and signatures of the ledger (node:crypto). A version is signed over its record hash,
 * which covers every other field, the chain link included: the chain protects the signatures'
 * order and the signatures protect the chain's authorship (docs/model-cluster.md, "Signed versions").
 *
 *   signed message = "sampleloop/model-version/v1\n" + recordHash        (UTF-8)
 *   signer         = base64 of the publisher's 32-byte raw public key
 *   signature      = base64 of the 64-byte Ed25519 signature (deterministic for a key and a message)
 *   key id         = first 16 bytes of SHA-256(raw public key), lowercase hex (how keys are shown)
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { errorMessage } from '../../engine/errors.js';
import type { ModelVersion } from '../../schemas/types.js';
import { LedgerError } from './record.js';

export const VERSION_SIGNING_CONTEXT = 'sampleloop/model-version/v1\n';

/** A private key that signs ledger records and checkpoints. */
export interface LedgerSigner {
  /** Base64 of the 32-byte raw public key (the `signer` field). */
  readonly publicKey: string;
  readonly keyId: string;
  sign(message: Buffer): Buffer;
}

/** Base64 of the raw 32-byte Ed25519 public key of `key` (a public or private KeyObject). */
export function rawPublicKeyBase64(key: KeyObject): string {
  const jwk = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new LedgerError('not an Ed25519 key');
  return Buffer.from(jwk.x, 'base64url').toString('base64');
}

export function keyIdOf(publicKeyBase64: string): string {
  return createHash('sha256').update(Buffer.from(publicKeyBase64, 'base64')).digest('hex').slice(0, 32);
}

/**
 * An Ed25519 public key from text: base64 of the 32 raw bytes (as `models keygen` prints it) or a
 * PEM `PUBLIC KEY` block. Throws LedgerError otherwise.
 */
export function parsePublicKey(text: string): KeyObject {
  const trimmed = text.trim();
  let key: KeyObject;
  try {
    if (trimmed.startsWith('-----BEGIN')) {
      key = createPublicKey(trimmed);
    } else {
      const raw = Buffer.from(trimmed, 'base64');
      if (raw.length !== 32 || raw.toString('base64') !== trimmed) throw new Error('expected base64 of 32 bytes');
      key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
    }
  } catch (err) {
    throw new LedgerError(`not an Ed25519 public key (base64 of its 32 raw bytes, or PEM): ${errorMessage(err)}`, { cause: err });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new LedgerError(`not an Ed25519 public key (a ${key.asymmetricKeyType ?? 'unknown'} key)`);
  return key;
}

export function signerFromPrivateKey(key: KeyObject): LedgerSigner {
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ed25519') throw new LedgerError('the signing key must be an Ed25519 private key');
  const publicKey = rawPublicKeyBase64(key);
  return { publicKey, keyId: keyIdOf(publicKey), sign: (message) => sign(null, message, key) };
}

/** The signer in a PEM (PKCS#8) private key file, as `models keygen` writes it. */
export function loadSigner(file: string): LedgerSigner {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new LedgerError(`cannot read the signing key ${file}: ${errorMessage(err)}`, { cause: err });
  }
  try {
    return signerFromPrivateKey(createPrivateKey(pem));
  } catch (err) {
    throw new LedgerError(`${file} is not an Ed25519 private key in PEM (write one with "sampleloop models keygen"): ${errorMessage(err)}`, { cause: err });
  }
}

export interface WrittenKeyPair {
  privateKeyFile: string;
  publicKeyFile: string;
  /** Base64 of the raw public key: what goes into models.trust.keys[].publicKey. */
  publicKey: string;
  keyId: string;
}

/**
 * Writes a new Ed25519 key pair: the private key as PKCS#8 PEM to `file` (mode 0600, never over an
 * existing file) and the public key as SPKI PEM to `<file>.pub`. Throws LedgerError (code EEXIST in
 * `cause`) when `file` exists.
 */
export function writeKeyPair(file: string): WrittenKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  mkdirSync(dirname(file), { recursive: true });
  try {
    writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    throw new LedgerError(`cannot write the private key ${file}: ${errorMessage(err)}`, { cause: err });
  }
  const publicKeyFile = `${file}.pub`;
  writeFileSync(publicKeyFile, publicKey.export({ format: 'pem', type: 'spki' }), { mode: 0o644 });
  const raw = rawPublicKeyBase64(publicKey);
  return { privateKeyFile: file, publicKeyFile, publicKey: raw, keyId: keyIdOf(raw) };
}

export function versionSigningMessage(recordHash: string): Buffer {
  return Buffer.from(VERSION_SIGNING_CONTEXT + recordHash, 'utf8');
}

/** `record` with `signer` and `signature` set: a signature over its record hash. */
export function signVersion(record: ModelVersion, signer: LedgerSigner): ModelVersion {
  return { ...record, signer: signer.publicKey, signature: signer.sign(versionSigningMessage(record.recordHash)).toString('base64') };
}

/** Whether `signature` (base64) is `publicKey`'s (base64 raw) signature of `message`; false for malformed input. */
export function signatureValid(publicKey: string, message: Buffer, signature: string): boolean {
  let key: KeyObject;
  try {
    key = parsePublicKey(publicKey);
  } catch {
    return false;
  }
  const bytes = Buffer.from(signature, 'base64');
  if (bytes.length !== 64 || bytes.toString('base64') !== signature) return false;
  return verify(null, message, key, bytes);
}
