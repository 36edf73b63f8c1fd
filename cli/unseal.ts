import type { DisplayRecord } from '../access/embedded.js';
import { ConfigError, errorMessage } from '../engine/errors.js';
import type { PrivacyPolicy } from '../processors/privacy.js';

/**
 * Adds `payloadUnsealed` (UTF-8 text of the original bytes) to dead letters whose payload is sealed.
 * A payload the configured key cannot open (sealed under another privacy key, or damaged) gets
 * `payloadUnsealError` instead, so the other records still print; returns how many failed.
 */
export function unsealDeadLetters(records: DisplayRecord[], policy: () => PrivacyPolicy): number {
  let failed = 0;
  let privacy: PrivacyPolicy | undefined;
  for (const r of records) {
    if (r.headers['sampleloop.dlq.payload.encoding'] !== 'sealed') continue;
    const value = r.value as { payload?: string | { base64: string } } | null;
    const payload = value?.payload;
    if (!value || payload === undefined) continue;
    const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload.base64, 'base64');
    try {
      privacy ??= policy();
      (value as Record<string, unknown>).payloadUnsealed = privacy.openSealed(bytes).toString('utf8');
    } catch (err) {
      if (err instanceof ConfigError && !/not a sealed/.test(err.message)) throw err;
      failed++;
      (value as Record<string, unknown>).payloadUnsealError = `not sealed under the configured privacy key, or damaged (${errorMessage(err)})`;
    }
  }
  return failed;
}

/** The error `consume --unseal` exits with (2) after printing, when some payloads did not open. */
export function unsealFailure(failed: number): ConfigError {
  return new ConfigError(
    `${failed} sealed dead-letter payload(s) could not be unsealed with the configured privacy key (see payloadUnsealError): ` +
      'they were sealed under another key. Give the key the engine used when it wrote them (the environment variable named by privacy.keyEnv, privacy.keyFile, or the <dataDir>/privacy.key it generated)',
  );
}
