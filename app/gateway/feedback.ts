import { validateRecord } from '../../schemas/validate.js';
import type { Feedback } from '../../schemas/types.js';

export interface FeedbackResult {
  index: number;
  requestId?: string;
  status: 'accepted' | 'rejected';
  /** The dead-letter reason code the engine would give the record on the feedback topic. */
  reasonCode?: string;
  reason?: string;
}

export class FeedbackBodyError extends Error {}

/**
 * The records of a `POST /v1/feedback` body: one JSON object, a JSON array of them (parsed by the
 * server as application/json) or JSON lines (application/x-ndjson, text/plain; one object per line).
 */
export function feedbackItems(body: unknown, maxRecords: number): unknown[] {
  let items: unknown[];
  if (typeof body === 'string') {
    items = [];
    for (const line of body.split('\n')) {
      if (line.trim().length === 0) continue;
      try {
        items.push(JSON.parse(line) as unknown);
      } catch {
        items.push(UNPARSABLE);
      }
    }
  } else if (Array.isArray(body)) items = body;
  else if (body !== null && typeof body === 'object') items = [body];
  else throw new FeedbackBodyError('body: give a feedback object, a JSON array of them, or JSON lines');
  if (items.length === 0) throw new FeedbackBodyError('body: no feedback records');
  if (items.length > maxRecords) throw new FeedbackBodyError(`body: ${items.length} records, more than gateway.maxFeedbackRecords (${maxRecords}); send them in smaller batches`);
  return items;
}

const UNPARSABLE = Symbol('unparsable');

/**
 * Validates each record as the engine validates the feedback topic (schemas/validate.ts), with
 * `timestamp` defaulting to the time it arrived. Reasons name fields, never values of attributes
 * (feedback carries none).
 */
export function validateFeedback(items: readonly unknown[], now: number): { accepted: Feedback[]; results: FeedbackResult[] } {
  const accepted: Feedback[] = [];
  const results: FeedbackResult[] = items.map((item, index) => {
    if (item === UNPARSABLE) return { index, status: 'rejected', reasonCode: 'undecodable', reason: `line ${index + 1} is not valid JSON` };
    if (item === null || typeof item !== 'object' || Array.isArray(item)) return { index, status: 'rejected', reasonCode: 'wrong-type', reason: 'a feedback record must be a JSON object' };
    const candidate = item as Record<string, unknown>;
    const withTime = candidate.timestamp === undefined ? { ...candidate, timestamp: now } : candidate;
    const result = validateRecord<Feedback>('Feedback', withTime);
    const requestId = typeof candidate.requestId === 'string' ? { requestId: candidate.requestId } : {};
    if (!result.ok) return { index, ...requestId, status: 'rejected', reasonCode: result.reasonCode, reason: result.reason };
    accepted.push(result.value);
    return { index, ...requestId, status: 'accepted' };
  });
  return { accepted, results };
}
