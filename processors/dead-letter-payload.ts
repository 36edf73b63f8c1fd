import type { DeadLetterRequest } from '../engine/processor.js';
import { schemaOf } from '../schemas/index.js';
import type { InputSchemaName } from '../schemas/validate.js';
import type { PrivacyPolicy } from './privacy.js';

const schemaFields = new Map<InputSchemaName, ReadonlySet<string>>();

/**
 * The dead letter of an input record that is rejected: what could be parsed (`partial`) re-encoded
 * with its sensitive attributes protected when a re-encoding can vouch for every sensitive value;
 * otherwise the raw bytes sealed (or kept, when no rule names a sensitive attribute).
 */
export function inputDeadLetter(
  schema: InputSchemaName,
  privacy: PrivacyPolicy,
  reasonCode: string,
  reason: string,
  partial: Record<string, unknown> | undefined,
  raw: Buffer | null,
): DeadLetterRequest {
  const redacted = partial && redactable(schema, partial) ? redact(privacy, partial) : undefined;
  if (redacted) return { reasonCode, reason, redactedPayload: redacted };
  // Bytes we could not parse may hold sensitive values we cannot find: keep them sealed, never in clear.
  const protectedPayload = privacy.protectRaw(raw ?? Buffer.alloc(0));
  // No rule names a sensitive attribute: the dead letter keeps the original bytes.
  if (protectedPayload === null) return { reasonCode, reason };
  return { reasonCode, reason, redactedPayload: protectedPayload.payload, payloadEncoding: protectedPayload.encoding };
}

/**
 * Whether a re-encoding can vouch for every sensitive value: not when a field outside the schema is
 * present (e.g. the raw request a gateway log carries, with its customer data) or an attribute holds
 * an object or array (sensitive values nested under a key the rules do not name). Those are sealed.
 */
function redactable(schema: InputSchemaName, partial: Record<string, unknown>): boolean {
  let fields = schemaFields.get(schema);
  if (fields === undefined) {
    fields = new Set((schemaOf(schema) as unknown as { fields: Array<{ name: string }> }).fields.map((f) => f.name));
    schemaFields.set(schema, fields);
  }
  for (const key of Object.keys(partial)) if (!fields.has(key)) return false;
  const attributes = partial.attributes;
  if (attributes === undefined || attributes === null) return true;
  if (typeof attributes !== 'object' || Array.isArray(attributes)) return false;
  for (const v of Object.values(attributes as Record<string, unknown>)) if (typeof v === 'object' && v !== null) return false;
  return true;
}

/** Re-encodes what could be parsed with its sensitive attributes protected, so dead letters never carry them in clear. */
function redact(privacy: PrivacyPolicy, partial: Record<string, unknown>): Buffer | undefined {
  const attributes = partial.attributes;
  const category = typeof partial.category === 'string' ? partial.category : null;
  const safe: Record<string, unknown> = { ...partial };
  if (typeof attributes === 'object' && attributes !== null && !Array.isArray(attributes)) {
    const strings: Record<string, string> = {};
    for (const [k, v] of Object.entries(attributes as Record<string, unknown>)) strings[k] = typeof v === 'string' ? v : JSON.stringify(v);
    safe.attributes = privacy.protect(category, strings);
  }
  try {
    return Buffer.from(JSON.stringify(safe, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)));
  } catch {
    // Nested too deeply to re-encode (JSON.stringify overflows the stack): the original is sealed instead.
    return undefined;
  }
}
