/** Following the models topic: each version verified against its category's head, and the whole ledger read and verified. */
import { errorMessage } from '../../engine/errors.js';
import type { DisplayRecord, LogAccess } from '../../access/embedded.js';
import type { ModelVersion } from '../../schemas/types.js';
import { modelVersionFromValue } from './codec.js';
import { modelBytes } from './record.js';
import type { TrustPolicy } from './trust.js';
import { fail, verifyVersion, type Verification } from './verify.js';

/** One record of the models topic, decoded when possible. */
export interface LedgerRecord {
  partition: number;
  offset: number;
  timestamp: number;
  key: string | null;
  version?: ModelVersion;
  /** Why the record could not be decoded. */
  decodeError?: string;
}

export interface CheckedVersion {
  partition: number;
  offset: number;
  category: string;
  /** Undefined when the record could not be decoded. */
  version: ModelVersion | undefined;
  verification: Verification;
}

/**
 * Follows the models topic record by record and verifies each version against the last version of
 * its category that verified (the one a predictor serves). A version that fails is left out of the
 * chain: the next version must link to the last good one.
 */
export class LedgerBook {
  private readonly heads = new Map<string, ModelVersion>();
  private readonly labels = new Map<string, Set<string>>();

  /** With `trust`, a version must also be signed by a key trusted for its category (trust.ts); without it, only integrity is checked. */
  constructor(private readonly trust?: TrustPolicy) {}

  /** Verifies `record` and, when it verifies, makes it its category's head. `bytes` is set when it verified. */
  apply(record: LedgerRecord): CheckedVersion & { bytes?: Uint8Array } {
    const base = { partition: record.partition, offset: record.offset };
    const version = record.version;
    if (version === undefined) {
      return { ...base, category: record.key ?? '', version: undefined, verification: fail('undecodable', record.decodeError ?? 'record could not be decoded') };
    }
    const previous = this.heads.get(version.category);
    let bytes: Uint8Array | undefined;
    let verification: Verification;
    try {
      bytes = modelBytes(version);
      verification = verifyVersion(version, previous, { bytes, ...(this.trust ? { trust: this.trust } : {}) });
    } catch (err) {
      verification = fail('bytes-missing', errorMessage(err));
    }
    const labels = this.labels.get(version.category) ?? new Set<string>();
    if (verification.ok && labels.has(version.version)) {
      verification = fail('duplicate-version', `version label "${version.version}" is already used by an earlier verified version of "${version.category}"`);
    }
    if (!verification.ok || bytes === undefined) return { ...base, category: version.category, version, verification };
    labels.add(version.version);
    this.labels.set(version.category, labels);
    this.heads.set(version.category, version);
    return { ...base, category: version.category, version, verification, bytes };
  }

  /** The last verified version of a category. */
  head(category: string): ModelVersion | undefined {
    return this.heads.get(category);
  }

  allHeads(): Map<string, ModelVersion> {
    return new Map(this.heads);
  }

  hasVersion(category: string, label: string): boolean {
    return this.labels.get(category)?.has(label) ?? false;
  }
}

export interface LedgerView {
  /** Every record of the topic in log order, with its verification. */
  versions: CheckedVersion[];
  /** Per category, its versions in log order. */
  byCategory: Map<string, CheckedVersion[]>;
  /** Per category, the last verified version (what a predictor serves). */
  heads: Map<string, ModelVersion>;
  failures: CheckedVersion[];
}

/**
 * Reads and verifies the whole ledger through the CLI's log access (direct or through a running
 * engine); with `trust`, signatures are checked as the predictor checks them.
 */
export async function readLedger(access: LogAccess, topic = 'models', trust?: TrustPolicy): Promise<LedgerView> {
  const exists = (await access.topics()).some((t) => t.topic === topic);
  const records = exists ? await access.read(topic) : [];
  const book = new LedgerBook(trust);
  const versions: CheckedVersion[] = [];
  const byCategory = new Map<string, CheckedVersion[]>();
  const sorted = [...records].sort((a, b) => a.partition - b.partition || a.offset - b.offset);
  for (const display of sorted) {
    const { bytes: _bytes, ...checked } = book.apply(displayToLedgerRecord(display));
    versions.push(checked);
    const list = byCategory.get(checked.category) ?? [];
    list.push(checked);
    byCategory.set(checked.category, list);
  }
  return { versions, byCategory, heads: book.allHeads(), failures: versions.filter((v) => !v.verification.ok) };
}

function displayToLedgerRecord(display: DisplayRecord): LedgerRecord {
  const base = { partition: display.partition, offset: display.offset, timestamp: display.timestamp, key: display.key };
  try {
    return { ...base, version: modelVersionFromValue(display.value) };
  } catch (err) {
    return { ...base, decodeError: errorMessage(err) };
  }
}
