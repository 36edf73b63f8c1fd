/** Appending versions to the ledger: `publishVersion`, and `ledgerClient` for in-process publishers (the built-in trainer). */
import type { LogAccess } from '../../access/embedded.js';
import type { ModelVersion } from '../../schemas/types.js';
import { readLedger, type CheckedVersion } from './book.js';
import { ledgerJson } from './codec.js';
import { buildVersion, LedgerError, MODEL_VERSION_SCHEMA, modelBytes, sha256Hex, type NewVersion } from './record.js';
import { signVersion, type LedgerSigner } from './signing.js';
import { checkTrust, type TrustPolicy } from './trust.js';

/** How a publisher signs, and the policy the predictors apply (a version they would refuse is not published). */
export interface LedgerKeys {
  /** Signs each new version; without it versions are unsigned. */
  signer?: LedgerSigner;
  /** Reads the ledger as the predictor does (heads = trusted versions) and refuses to publish what it would refuse. */
  trust?: TrustPolicy;
}

export interface Published {
  record: ModelVersion;
  previous: ModelVersion | undefined;
  /** Records of the ledger that failed verification when this version was published. */
  failures: CheckedVersion[];
}

/**
 * Appends the next version of `input.category`, linked to its last verified version. Written as
 * Confluent-framed Avro when the access can (direct access), else as JSON (through a running engine).
 * One publisher per category at a time: two racing publishers fork the chain, and `verify` reports the loser.
 */
export async function publishVersion(access: LogAccess, input: NewVersion, options: { topic?: string } & LedgerKeys = {}): Promise<Published> {
  const topic = options.topic ?? 'models';
  const view = await readLedger(access, topic, options.trust);
  const previous = view.heads.get(input.category);
  if (input.version !== undefined && (view.byCategory.get(input.category) ?? []).some((v) => v.verification.ok && v.version?.version === input.version)) {
    throw new LedgerError(`category "${input.category}" already has a version "${input.version}"; version labels are unique per category`);
  }
  const built = buildVersion(input, previous);
  const record = options.signer ? signVersion(built, options.signer) : built;
  if (options.trust) {
    const trust = checkTrust(record, previous, options.trust);
    if (!trust.ok) throw new LedgerError(
        `not published: predictors would refuse this version of "${record.category}" (${trust.code}: ${trust.reason}); sign with a key models.trust.keys trusts for it (models.signing.keyFile, or models publish --key)`,
      );
  }
  if (access.produceAvro) {
    await access.produceAvro(topic, MODEL_VERSION_SCHEMA, [{ key: record.category, value: record, timestamp: record.createdAt }]);
  } else {
    await access.produce(topic, JSON.stringify(ledgerJson(record)), { keyField: 'category', createPartitions: 1 });
  }
  return { record, previous, failures: view.failures };
}

/** A version as a trainer hands it over: everything but the chain fields, which the ledger computes. */
export type UnchainedVersion = Omit<ModelVersion, 'recordHash' | 'prevRecordHash' | 'sequence'>;

/** The ledger as an in-process publisher (e.g. the built-in trainer) uses it. */
export interface LedgerClient {
  /** The last verified version of `category` (what predictors serve), or undefined. */
  latest(category: string): Promise<ModelVersion | undefined>;
  /** The version labels of the category's verified versions (labels are unique per category). */
  versions(category: string): Promise<string[]>;
  publishVersion(version: UnchainedVersion): Promise<Published>;
}

/** `access` is e.g. `directAccess(app.log, app.registry)` inside the engine process; `keys` sign and check as `publishVersion`. */
export function ledgerClient(access: LogAccess, topic = 'models', keys: LedgerKeys = {}): LedgerClient {
  return {
    latest: async (category) => (await readLedger(access, topic, keys.trust)).heads.get(category),
    versions: async (category) =>
      ((await readLedger(access, topic, keys.trust)).byCategory.get(category) ?? []).flatMap((v) => (v.verification.ok && v.version ? [v.version.version] : [])),
    publishVersion: async (v) => {
      const bytes = modelBytes({ ...v, sequence: 0, prevRecordHash: '', recordHash: '' });
      if (v.modelSha256 !== '' && sha256Hex(bytes) !== v.modelSha256) {
        throw new LedgerError(`modelSha256 ${v.modelSha256} does not match the ONNX bytes (${sha256Hex(bytes)})`);
      }
      return publishVersion(
        access,
        {
          category: v.category,
          version: v.version,
          onnx: bytes,
          ...(v.onnx === null && v.onnxUri !== null ? { onnxUri: v.onnxUri } : {}),
          featureNames: v.featureNames,
          classes: v.classes,
          metrics: v.metrics,
          trainingSnapshot: v.trainingSnapshot,
          trainer: v.trainer,
          createdAt: v.createdAt,
        },
        { topic, ...keys },
      );
    },
  };
}
