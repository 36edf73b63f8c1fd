import type { DisplayRecord } from '../engine/embedded/access.js';
import type { PrivacyPolicy } from '../processors/privacy.js';

/** Adds `payloadUnsealed` (UTF-8 text of the original bytes) to dead letters whose payload is sealed. */
export function unsealDeadLetters(records: DisplayRecord[], privacy: PrivacyPolicy): void {
  for (const r of records) {
    if (r.headers['sampleloop.dlq.payload.encoding'] !== 'sealed') continue;
    const value = r.value as { payload?: string | { base64: string } } | null;
    const payload = value?.payload;
    if (!value || payload === undefined) continue;
    const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload.base64, 'base64');
    (value as Record<string, unknown>).payloadUnsealed = privacy.openSealed(bytes).toString('utf8');
  }
}
