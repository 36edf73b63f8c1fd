import type { Feedback, Prediction, Request } from './types.js';

/** The schemas that arrive as input and are validated on decode. */
export type InputSchemaName = 'Request' | 'Prediction' | 'Feedback';

/**
 * Stable machine codes of rejected input records (the dead letter's `reasonCode`). `future-timestamp`
 * is raised by the input's timestamp extractor, the last three downstream (join / routing), not by
 * the decoder; they are listed so every code lives in one place.
 */
export const ReasonCodes = {
  undecodable: 'undecodable',
  unknownSchemaId: 'unknown-schema-id',
  oversize: 'oversize',
  missingRequestId: 'missing-request-id',
  missingField: 'missing-field',
  wrongType: 'wrong-type',
  nonFiniteFeature: 'non-finite-feature',
  nonFiniteScore: 'non-finite-score',
  invalidTimestamp: 'invalid-timestamp',
  futureTimestamp: 'future-timestamp',
  invalidFeedback: 'invalid-feedback',
  unknownCategory: 'unknown-category',
  duplicatePrediction: 'duplicate-prediction',
} as const;

export type ReasonCode = (typeof ReasonCodes)[keyof typeof ReasonCodes];

export type DecodeResult<T> =
  | { ok: true; value: T }
  | { ok: false; reasonCode: string; reason: string; partial?: Record<string, unknown> };

export function rejected<T>(reasonCode: ReasonCode, reason: string, partial?: Record<string, unknown>): DecodeResult<T> {
  return partial === undefined ? { ok: false, reasonCode, reason } : { ok: false, reasonCode, reason, partial };
}

/**
 * Checks a candidate record (parsed JSON, or a value decoded by Avro) against the rules of its schema
 * and returns a fresh object holding exactly the schema's fields, defaults filled in. Extra fields are
 * dropped. Validation is one pass; the first broken rule (in field order) is reported.
 */
export function validateRecord<T>(name: InputSchemaName, candidate: Record<string, unknown>): DecodeResult<T> {
  const reader = FieldReader.shared.start(candidate);
  let value: Request | Prediction | Feedback;
  switch (name) {
    case 'Request':
      value = readRequest(reader);
      break;
    case 'Prediction':
      value = readPrediction(reader);
      break;
    case 'Feedback':
      value = readFeedback(reader);
      break;
    default:
      return rejected('wrong-type', `"${String(name)}" is not an input schema`, candidate);
  }
  if (reader.code !== undefined) return rejected(reader.code, reader.reason, candidate);
  return { ok: true, value: value as T };
}

function readRequest(r: FieldReader): Request {
  return {
    requestId: r.requestId(),
    category: r.nonEmptyString('category'),
    features: r.finiteMap('features', 'non-finite-feature'),
    attributes: r.stringMap('attributes'),
    timestamp: r.timestamp('timestamp'),
    source: r.string('source', ''),
  };
}

function readPrediction(r: FieldReader): Prediction {
  return {
    requestId: r.requestId(),
    category: r.nonEmptyString('category'),
    features: r.finiteMap('features', 'non-finite-feature'),
    attributes: r.stringMap('attributes'),
    predictedLabel: r.nonEmptyString('predictedLabel'),
    scores: r.finiteMap('scores', 'non-finite-score'),
    modelVersion: r.string('modelVersion'),
    modelHash: r.string('modelHash', ''),
    requestTimestamp: r.timestamp('requestTimestamp'),
    timestamp: r.timestamp('timestamp'),
  };
}

function readFeedback(r: FieldReader): Feedback {
  const feedback: Feedback = {
    requestId: r.requestId(),
    timestamp: r.timestamp('timestamp'),
    source: r.string('source', ''),
    actualLabel: r.nullableString('actualLabel'),
    correct: r.nullableBoolean('correct'),
  };
  if (feedback.actualLabel === '') {
    r.fail('invalid-feedback', 'actualLabel is an empty string; omit it or set it to null when unknown');
  } else if (feedback.actualLabel === null && feedback.correct === null) {
    r.fail('invalid-feedback', 'feedback has neither actualLabel nor correct');
  }
  return feedback;
}

/**
 * Reads fields one by one, remembering the first failure. After a failure it keeps returning
 * placeholders so the record builders stay straight-line code; their result is then discarded.
 */
class FieldReader {
  static readonly shared = new FieldReader();

  code: ReasonCode | undefined;
  reason = '';
  private source: Record<string, unknown> = {};

  start(source: Record<string, unknown>): this {
    this.source = source;
    this.code = undefined;
    this.reason = '';
    return this;
  }

  fail(code: ReasonCode, reason: string): void {
    if (this.code === undefined) {
      this.code = code;
      this.reason = reason;
    }
  }

  requestId(): string {
    const value = this.source.requestId;
    if (typeof value === 'string' && value.length > 0) return value;
    if (value === undefined || value === null || value === '') {
      this.fail('missing-request-id', 'requestId is missing or empty');
    } else {
      this.fail('wrong-type', `requestId must be a string, got ${describe(value)}`);
    }
    return '';
  }

  nonEmptyString(field: string): string {
    const value = this.string(field);
    if (value === '' && this.code === undefined) this.fail('missing-field', `${field} must not be empty`);
    return value;
  }

  /** A string field; `fallback` makes it optional (absent or null → fallback). */
  string(field: string, fallback?: string): string {
    const value = this.source[field];
    if (typeof value === 'string') return value;
    if (fallback !== undefined && (value === undefined || value === null)) return fallback;
    this.failType(field, value, 'a string');
    return '';
  }

  nullableString(field: string): string | null {
    const value = unwrapUnion(this.source[field], 'string');
    if (typeof value === 'string') return value;
    if (value === undefined || value === null) return null;
    this.failType(field, value, 'a string or null');
    return null;
  }

  nullableBoolean(field: string): boolean | null {
    const value = unwrapUnion(this.source[field], 'boolean');
    if (typeof value === 'boolean') return value;
    if (value === undefined || value === null) return null;
    this.failType(field, value, 'a boolean or null');
    return null;
  }

  /** An event time: a safe integer number of milliseconds ≥ 0. */
  timestamp(field: string): number {
    const value = this.source[field];
    if (typeof value === 'number') {
      if (Number.isSafeInteger(value) && value >= 0) return value;
      this.fail('invalid-timestamp', `${field} must be an integer number of milliseconds >= 0, got ${value}`);
      return 0;
    }
    this.failType(field, value, 'an integer number of milliseconds');
    return 0;
  }

  /** map<double> whose values must all be finite; `nonFiniteCode` names what the map holds. */
  finiteMap(field: string, nonFiniteCode: ReasonCode): Record<string, number> {
    const map = this.source[field];
    if (!isPlainMap(map)) {
      this.failType(field, map, 'an object of numbers');
      return {};
    }
    for (const key in map) {
      const value = map[key];
      if (typeof value !== 'number') {
        this.fail('wrong-type', `${field}.${key} must be a number, got ${describe(value)}`);
        break;
      }
      if (!Number.isFinite(value)) {
        this.fail(nonFiniteCode, `${field}.${key} is ${value}; values must be finite numbers`);
        break;
      }
    }
    return map as Record<string, number>;
  }

  /** map<string>, optional (absent or null → {}). */
  stringMap(field: string): Record<string, string> {
    const map = this.source[field];
    if (map === undefined || map === null) return {};
    if (!isPlainMap(map)) {
      this.failType(field, map, 'an object of strings');
      return {};
    }
    for (const key in map) {
      const value = map[key];
      if (typeof value !== 'string') {
        this.fail('wrong-type', `${field}.${key} must be a string, got ${describe(value)}`);
        break;
      }
    }
    return map as Record<string, string>;
  }

  private failType(field: string, value: unknown, expected: string): void {
    if (value === undefined) this.fail('missing-field', `${field} is required`);
    else this.fail('wrong-type', `${field} must be ${expected}, got ${describe(value)}`);
  }
}

function isPlainMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

/** Accepts Avro's JSON encoding of a nullable union (`{"string": "x"}`) as well as the bare value. */
function unwrapUnion(value: unknown, branch: string): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0] === branch) return (value as Record<string, unknown>)[branch];
  return value;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  // Never the value itself: reasons travel in dead-letter headers and logs, and values may be sensitive.
  if (typeof value === 'string') return `a string of ${value.length} characters`;
  if (typeof value === 'number') return Number.isFinite(value) ? 'a number' : `the number ${value}`;
  return typeof value === 'object' || typeof value === 'undefined' ? `an ${typeof value}` : `a ${typeof value}`;
}
