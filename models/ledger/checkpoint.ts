/**
 * Checkpoints: a signed statement of every category's head (sequence, record hash, time), kept
 * outside the cluster, that a later ledger must extend (Certificate Transparency's signed tree heads,
 * for a hash chain). Whoever can rewrite the whole models topic and sign with a trusted key can make
 * a consistent ledger, but not one that contains the checkpointed heads unless it kept the history.
 *
 *   signed message = "sampleloop/ledger-checkpoint/v1\n" + JSON.stringify([format, topic, createdAt,
 *                    [[category, sequence, version, recordHash, versionCreatedAt], ...]])   (heads sorted by category, UTF-8 order)
 */
import type { ModelVersion } from '../../schemas/types.js';
import type { LedgerView } from './book.js';
import { LedgerError } from './record.js';
import { keyIdOf, signatureValid, type LedgerSigner } from './signing.js';
import type { TrustPolicy } from './trust.js';

export const CHECKPOINT_FORMAT = 'sampleloop-ledger-checkpoint/1';
const CHECKPOINT_SIGNING_CONTEXT = 'sampleloop/ledger-checkpoint/v1\n';

export interface CheckpointHead {
  category: string;
  sequence: number;
  version: string;
  recordHash: string;
  /** The head version's createdAt. */
  createdAt: number;
}

export interface Checkpoint {
  format: typeof CHECKPOINT_FORMAT;
  topic: string;
  /** When the checkpoint was taken (epoch ms). */
  createdAt: number;
  heads: CheckpointHead[];
  /** Base64 raw Ed25519 public key. */
  signer: string;
  /** Base64 signature over the message above. */
  signature: string;
}

function byUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function checkpointMessage(c: Pick<Checkpoint, 'format' | 'topic' | 'createdAt' | 'heads'>): Buffer {
  const heads = [...c.heads].sort((a, b) => byUtf8(a.category, b.category)).map((h) => [h.category, h.sequence, h.version, h.recordHash, h.createdAt]);
  return Buffer.from(CHECKPOINT_SIGNING_CONTEXT + JSON.stringify([c.format, c.topic, c.createdAt, heads]), 'utf8');
}

/** A signed checkpoint of the ledger's heads (the last verified version of each category). */
export function buildCheckpoint(heads: ReadonlyMap<string, ModelVersion>, topic: string, signer: LedgerSigner, now: number): Checkpoint {
  const list = [...heads.values()]
    .map((h) => ({ category: h.category, sequence: h.sequence, version: h.version, recordHash: h.recordHash, createdAt: h.createdAt }))
    .sort((a, b) => byUtf8(a.category, b.category));
  const unsigned = { format: CHECKPOINT_FORMAT, topic, createdAt: now, heads: list } as const;
  return { ...unsigned, signer: signer.publicKey, signature: signer.sign(checkpointMessage(unsigned)).toString('base64') };
}

/** Parses a checkpoint file's text; throws LedgerError when it is not one. */
export function parseCheckpoint(text: string): Checkpoint {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new LedgerError('the checkpoint is not JSON (expected the output of "sampleloop models checkpoint")');
  }
  const c = parsed as Record<string, unknown> | null;
  const isHead = (h: unknown): h is CheckpointHead => {
    const x = h as Record<string, unknown> | null;
    return (
      x !== null && typeof x === 'object' && typeof x.category === 'string' && Number.isSafeInteger(x.sequence) && typeof x.version === 'string' &&
      typeof x.recordHash === 'string' && Number.isSafeInteger(x.createdAt)
    );
  };
  if (
    c === null || typeof c !== 'object' || c.format !== CHECKPOINT_FORMAT || typeof c.topic !== 'string' || !Number.isSafeInteger(c.createdAt) ||
    !Array.isArray(c.heads) || !c.heads.every(isHead) || typeof c.signer !== 'string' || typeof c.signature !== 'string'
  ) {
    throw new LedgerError(`not a ledger checkpoint (expected {"format": "${CHECKPOINT_FORMAT}", "topic", "createdAt", "heads": [...], "signer", "signature"})`);
  }
  const heads = (c.heads as CheckpointHead[]).map((h) => ({ category: h.category, sequence: h.sequence, version: h.version, recordHash: h.recordHash, createdAt: h.createdAt }));
  return { format: CHECKPOINT_FORMAT, topic: c.topic, createdAt: c.createdAt as number, heads, signer: c.signer, signature: c.signature };
}

export interface CheckpointVerification {
  ok: boolean;
  /** One line per problem: a bad or untrusted signature, a head the ledger does not contain. */
  problems: string[];
  /** Per checkpointed category, how many verified versions the ledger has after the checkpointed head. */
  newer: Map<string, number>;
}

/**
 * Proves that the ledger `view` (read with the trust policy) extends `checkpoint`: the checkpoint is
 * signed by a key of the policy (retired keys count for checkpoints taken before retirement), and each
 * checkpointed head is a verified version of the current ledger at the same sequence with the same
 * record hash. Since every verified version links to its predecessor by hash, the whole history up to
 * each head is then unchanged.
 */
export function verifyCheckpoint(checkpoint: Checkpoint, view: Pick<LedgerView, 'byCategory'>, trust: TrustPolicy, topic: string): CheckpointVerification {
  const problems: string[] = [];
  const newer = new Map<string, number>();
  const keyId = (() => {
    try {
      return keyIdOf(checkpoint.signer);
    } catch {
      return '(malformed key)';
    }
  })();
  if (!signatureValid(checkpoint.signer, checkpointMessage(checkpoint), checkpoint.signature)) {
    problems.push(`bad-signature: the checkpoint's signature does not verify under its signer ${keyId} (the file was changed)`);
  } else if (!trust.keys.some((k) => k.publicKey === checkpoint.signer && (k.retiredAt === undefined || checkpoint.createdAt <= k.retiredAt))) {
    problems.push(`untrusted-signer: the checkpoint is signed by key ${keyId}, which the trust policy (models.trust.keys) does not list (or had retired when the checkpoint was taken)`);
  }
  if (checkpoint.topic !== topic) problems.push(`the checkpoint is of topic "${checkpoint.topic}", the ledger read is "${topic}"`);
  for (const head of checkpoint.heads) {
    const verified = (view.byCategory.get(head.category) ?? []).flatMap((v) => (v.verification.ok && v.version ? [v.version] : []));
    const same = verified.find((v) => v.sequence === head.sequence);
    const where = `${head.category} version ${head.version} (sequence ${head.sequence}, recordHash ${head.recordHash})`;
    if (same === undefined) {
      const last = verified.at(-1);
      problems.push(
        `history-rewritten: the checkpoint's head ${where} is not in the ledger: its verified chain of "${head.category}" ` +
          (last === undefined ? 'is empty' : `ends at sequence ${last.sequence}`),
      );
    } else if (same.recordHash !== head.recordHash) {
      problems.push(`history-rewritten: the checkpoint's head ${where} differs from the ledger's version ${same.version} at that sequence (recordHash ${same.recordHash})`);
    } else {
      newer.set(head.category, verified.filter((v) => v.sequence > head.sequence).length);
    }
  }
  return { ok: problems.length === 0, problems, newer };
}
