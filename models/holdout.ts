import { createHash } from 'node:crypto';
import { ConfigError } from '../engine/errors.js';

const TWO_POW_32 = 2 ** 32;

/**
 * Whether a request belongs to the holdout set (kept out of training, used for evaluation).
 * Deterministic across processes and restarts: the first 4 bytes of sha256(requestId), read as a
 * big-endian uint32 and divided by 2^32, fall below `fraction`.
 */
export function inHoldout(requestId: string, fraction: number): boolean {
  if (!Number.isFinite(fraction) || fraction < 0 || fraction > 1) {
    throw new ConfigError(`holdout fraction must be within [0, 1], got ${fraction}`);
  }
  return holdoutPosition(requestId) < fraction;
}

/** Where a request falls in [0, 1); a request is held out for every fraction above this. */
export function holdoutPosition(requestId: string): number {
  const digest = createHash('sha256').update(requestId, 'utf8').digest();
  return digest.readUInt32BE(0) / TWO_POW_32;
}
