/** Picking one version of a category from the ledger (`models evaluate`, `models export`). */
import { UsageError } from '../engine/errors.js';
import { LedgerError, type LedgerView } from '../models/ledger.js';
import type { ModelVersion } from '../schemas/types.js';

/**
 * `version` given: that verified version; else the serving one (the category's last verified version).
 * `view` must be read with the engine's trust policy, so that "verified" and "serving" mean what they
 * mean to the predictor and the gateway (an unsigned or untrusted record is never picked).
 */
export function pickVersion(view: LedgerView, category: string, version: string | undefined): ModelVersion {
  const versions = view.byCategory.get(category) ?? [];
  if (versions.length === 0) {
    const known = [...view.byCategory.keys()];
    throw new UsageError(`no version of category "${category}" in the ledger${known.length > 0 ? ` (categories: ${known.join(', ')})` : ''}`);
  }
  if (version === undefined) {
    const head = view.heads.get(category);
    if (!head) throw new LedgerError(`no version of category "${category}" passes verification (run "sampleloop models verify")`);
    return head;
  }
  // a label may appear on a record that fails verification and on a verified one (e.g. an unsigned copy): take the verified one
  const found = versions.find((v) => v.verification.ok && v.version?.version === version) ?? versions.find((v) => v.version?.version === version);
  if (!found?.version) throw new UsageError(`category "${category}" has no version "${version}"; its versions: ${versions.flatMap((v) => (v.version ? [v.version.version] : [])).join(', ')}`);
  if (!found.verification.ok) throw new LedgerError(`version "${version}" of "${category}" fails verification (${found.verification.code}: ${found.verification.reason})`);
  return found.version;
}
