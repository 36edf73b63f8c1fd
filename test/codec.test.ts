import { randomBytes } from 'node:crypto';
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { DecodeError, SchemaError } from '../engine/errors.js';
import {
  decodeFramed,
  decodeRecord,
  encodeFramed,
  encodeJson,
  referencedSchemaId,
  type DecodeResult,
} from '../schemas/codec.js';
import { schemaJson, schemaOf } from '../schemas/index.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import type { Feedback, Prediction, Request } from '../schemas/types.js';
import { ReasonCodes } from '../schemas/validate.js';

const opts = { maxBytes: 64 * 1024 };

const request: Request = {
  requestId: 'r-1',
  category: 'loan',
  features: { income: 5200.5, age: 41 },
  attributes: { name: 'Ada Lovelace', phone: '0612345678' },
  timestamp: 1_700_000_000_000,
  source: 'web',
};

const prediction: Prediction = {
  requestId: 'r-1',
  category: 'loan',
  features: { income: 5200.5 },
  attributes: {},
  predictedLabel: 'approve',
  scores: { approve: 0.7, reject: 0.3 },
  modelVersion: 'v3',
  modelHash: '',
  requestTimestamp: 1_700_000_000_000,
  timestamp: 1_700_000_000_100,
};

const feedback: Feedback = { requestId: 'r-1', timestamp: 1_700_000_001_000, source: 'crm', actualLabel: 'reject', correct: null };

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

function failure<T>(result: DecodeResult<T>): { reasonCode: string; reason: string; partial?: Record<string, unknown> } {
  if (result.ok) throw new Error(`expected a failure, got ${JSON.stringify(result.value)}`);
  return result;
}

function value<T>(result: DecodeResult<T>): T {
  if (!result.ok) throw new Error(`expected success, got ${result.reasonCode}: ${result.reason}`);
  return result.value;
}

describe('decodeRecord: JSON', () => {
  it('decodes each input schema, dropping unknown fields', () => {
    expect(value(decodeRecord<Request>('Request', json({ ...request, extra: 1 }), opts))).toEqual(request);
    expect(value(decodeRecord<Prediction>('Prediction', json(prediction), opts))).toEqual(prediction);
    expect(value(decodeRecord<Feedback>('Feedback', json(feedback), opts))).toEqual(feedback);
  });

  it('fills defaults for omitted optional fields and accepts leading whitespace', () => {
    const bytes = Buffer.from(`\n\t  ${JSON.stringify({ requestId: 'r-2', category: 'c', features: {}, timestamp: 0 })}`);
    expect(value(decodeRecord<Request>('Request', bytes, opts))).toEqual({
      requestId: 'r-2', category: 'c', features: {}, attributes: {}, timestamp: 0, source: '',
    });
    expect(value(decodeRecord<Feedback>('Feedback', json({ requestId: 'r', timestamp: 5, correct: false }), opts))).toEqual({
      requestId: 'r', timestamp: 5, source: '', actualLabel: null, correct: false,
    });
    const { modelHash: _omitted, attributes: _alsoOmitted, ...minimal } = prediction;
    expect(value(decodeRecord<Prediction>('Prediction', json(minimal), opts))).toEqual({ ...prediction, modelHash: '', attributes: {} });
  });

  it('accepts Avro-JSON wrapped nullable unions', () => {
    const decoded = value(decodeRecord<Feedback>('Feedback', json({ requestId: 'r', timestamp: 1, actualLabel: { string: 'x' }, correct: { boolean: true } }), opts));
    expect(decoded.actualLabel).toBe('x');
    expect(decoded.correct).toBe(true);
  });

  it('returns what was parsed as partial on a validation failure', () => {
    const result = failure(decodeRecord('Request', json({ ...request, requestId: '' }), opts));
    expect(result.reasonCode).toBe('missing-request-id');
    expect(result.partial).toMatchObject({ category: 'loan', attributes: { name: 'Ada Lovelace' } });
  });
});

describe('decodeRecord: raw Avro and Confluent framing', () => {
  it('decodes raw Avro written with our schema', () => {
    expect(value(decodeRecord<Request>('Request', schemaOf('Request').toBuffer(request), opts))).toEqual(request);
    expect(value(decodeRecord<Prediction>('Prediction', schemaOf('Prediction').toBuffer(prediction), opts))).toEqual(prediction);
    expect(value(decodeRecord<Feedback>('Feedback', schemaOf('Feedback').toBuffer(feedback), opts))).toEqual(feedback);
  });

  it('decodes framed records written with our own schema', async () => {
    const registry = new LocalSchemaRegistry();
    const id = await registry.register('predictions-value', schemaJson('Prediction'));
    const bytes = encodeFramed('Prediction', id, prediction);
    expect(bytes[0]).toBe(0);
    expect(referencedSchemaId(bytes)).toBe(id);
    const lookup = (n: number) => registry.cached(n);
    expect(value(decodeRecord<Prediction>('Prediction', bytes, { ...opts, writerSchema: lookup }))).toEqual(prediction);
    expect(decodeFramed(bytes, lookup)).toEqual({ schemaId: id, value: expect.objectContaining(prediction) as unknown });
  });

  it('resolves a writer schema with an extra field and a missing optional field', async () => {
    const writerSchema = {
      type: 'record',
      name: 'Request',
      namespace: 'com.partner.events',
      fields: [
        { name: 'requestId', type: 'string' },
        { name: 'userAgent', type: 'string' },
        { name: 'category', type: 'string' },
        { name: 'features', type: { type: 'map', values: 'double' } },
        { name: 'attributes', type: { type: 'map', values: 'string' } },
        { name: 'timestamp', type: 'long' },
        { name: 'tags', type: { type: 'array', items: 'string' } },
      ],
    };
    const registry = new LocalSchemaRegistry();
    await registry.register('requests-value', schemaJson('Request'));
    const id = await registry.register('requests-value', JSON.stringify(writerSchema));
    expect(id).toBe(2);
    const writer = avro.Type.forSchema(writerSchema as Parameters<typeof avro.Type.forSchema>[0]);
    const body = writer.toBuffer({ ...request, userAgent: 'curl/8', tags: ['a', 'b'] });
    const bytes = Buffer.concat([Buffer.from([0, 0, 0, 0, id]), body]);
    const lookup = (n: number) => registry.cached(n);
    const first = value(decodeRecord<Request>('Request', bytes, { ...opts, writerSchema: lookup }));
    expect(first).toEqual({ ...request, source: '' });
    // the resolver is cached per writer type: a second decode gives the same result
    expect(value(decodeRecord<Request>('Request', bytes, { ...opts, writerSchema: lookup }))).toEqual(first);
    // a foreign (unbounded) avsc type as writer works too
    expect(value(decodeRecord<Request>('Request', bytes, { ...opts, writerSchema: () => writer }))).toEqual(first);
  });

  it('rejects a writer schema that cannot be resolved (no requestId)', () => {
    const writer = avro.Type.forSchema({ type: 'record', name: 'Request', fields: [{ name: 'category', type: 'string' }] });
    const bytes = Buffer.concat([Buffer.from([0, 0, 0, 0, 9]), writer.toBuffer({ category: 'x' })]);
    const result = failure(decodeRecord('Request', bytes, { ...opts, writerSchema: () => writer }));
    expect(result.reasonCode).toBe('undecodable');
    expect(result.reason).toContain('schema 9');
  });

  it('reports unknown schema ids', () => {
    const bytes = encodeFramed('Feedback', 77, feedback);
    const withLookup = failure(decodeRecord('Feedback', bytes, { ...opts, writerSchema: () => undefined }));
    expect(withLookup).toMatchObject({ reasonCode: 'unknown-schema-id' });
    expect(withLookup.reason).toContain('77');
    expect(failure(decodeRecord('Feedback', bytes, opts)).reasonCode).toBe('unknown-schema-id');
    expect(() => decodeFramed(bytes, () => undefined)).toThrow(DecodeError);
    expect(() => decodeFramed(bytes, () => undefined)).toThrow(/unknown schema id 77/);
    expect(() => decodeFramed(json(feedback), () => undefined)).toThrow(/not Confluent-framed/);
  });

  it('referencedSchemaId is undefined for JSON and raw Avro', () => {
    expect(referencedSchemaId(json(feedback))).toBeUndefined();
    expect(referencedSchemaId(schemaOf('Feedback').toBuffer(feedback))).toBeUndefined();
    expect(referencedSchemaId(Buffer.from([0, 0, 1]))).toBeUndefined();
    expect(referencedSchemaId(Buffer.from([0, 0, 0, 1, 0, 5]))).toBe(256);
  });

  it('encodeFramed handles records bigger than the scratch buffer and rejects invalid values', () => {
    const big = { ...request, attributes: { blob: 'x'.repeat(200_000) } };
    const bytes = encodeFramed('Request', 5, big);
    expect(bytes.length).toBeGreaterThan(200_000);
    expect(decodeFramed(bytes, () => schemaOf('Request')).value).toEqual(expect.objectContaining(big));
    expect(() => encodeFramed('Request', 5, { ...request, features: { a: 'x' } })).toThrow(SchemaError);
    expect(() => encodeFramed('Request', -1, request)).toThrow(SchemaError);
    expect(encodeFramed('Request', 5, request).subarray(5).equals(schemaOf('Request').toBuffer(request))).toBe(true);
  });

  it('encodeJson produces JSON that decodes back', () => {
    const bytes = encodeJson(feedback);
    expect(bytes.toString('utf8')).toBe(JSON.stringify(feedback));
    expect(value(decodeRecord<Feedback>('Feedback', bytes, opts))).toEqual(feedback);
  });
});

describe('decodeRecord: reason codes', () => {
  const cases: Array<[string, 'Request' | 'Prediction' | 'Feedback', Buffer | null]> = [
    ['undecodable', 'Request', null],
    ['undecodable', 'Request', Buffer.alloc(0)],
    ['undecodable', 'Request', Buffer.from('{"requestId": "r-1",')],
    ['undecodable', 'Request', Buffer.from('   ')],
    ['undecodable', 'Request', schemaOf('Request').toBuffer(request).subarray(0, 10)],
    ['undecodable', 'Request', Buffer.concat([schemaOf('Request').toBuffer(request), Buffer.from([1, 2])])],
    ['undecodable', 'Feedback', Buffer.from([0, 0, 1])],
    ['oversize', 'Request', json({ ...request, attributes: { blob: 'x'.repeat(70_000) } })],
    ['missing-request-id', 'Request', json({ ...request, requestId: undefined })],
    ['missing-request-id', 'Feedback', json({ ...feedback, requestId: '' })],
    ['missing-request-id', 'Prediction', json({ ...prediction, requestId: null })],
    ['wrong-type', 'Request', json({ ...request, requestId: 42 })],
    ['wrong-type', 'Request', json({ ...request, features: { income: '5200' } })],
    ['wrong-type', 'Request', json({ ...request, features: [1, 2] })],
    ['wrong-type', 'Request', json({ ...request, attributes: { age: 41 } })],
    ['wrong-type', 'Request', json({ ...request, timestamp: '2024-01-01' })],
    ['wrong-type', 'Request', json({ ...request, source: 7 })],
    ['wrong-type', 'Prediction', json({ ...prediction, scores: { approve: null } })],
    ['wrong-type', 'Feedback', json({ ...feedback, correct: 'yes' })],
    ['wrong-type', 'Feedback', json({ ...feedback, actualLabel: 3 })],
    ['missing-field', 'Request', json({ ...request, category: '' })],
    ['missing-field', 'Request', json({ ...request, features: undefined })],
    ['missing-field', 'Prediction', json({ ...prediction, predictedLabel: undefined })],
    ['missing-field', 'Prediction', json({ ...prediction, modelVersion: undefined })],
    ['missing-field', 'Feedback', json({ ...feedback, timestamp: undefined })],
    ['non-finite-feature', 'Request', schemaOf('Request').toBuffer({ ...request, features: { income: Number.NaN } })],
    ['non-finite-feature', 'Prediction', schemaOf('Prediction').toBuffer({ ...prediction, features: { a: 1, b: Number.POSITIVE_INFINITY } })],
    ['non-finite-feature', 'Request', encodeFramed('Request', 1, { ...request, features: { x: Number.NEGATIVE_INFINITY } })],
    ['non-finite-score', 'Prediction', schemaOf('Prediction').toBuffer({ ...prediction, scores: { approve: Number.NaN } })],
    ['invalid-timestamp', 'Request', json({ ...request, timestamp: -1 })],
    ['invalid-timestamp', 'Request', json({ ...request, timestamp: 1.5 })],
    ['invalid-timestamp', 'Prediction', json({ ...prediction, requestTimestamp: 1e300 })],
    ['invalid-timestamp', 'Feedback', schemaOf('Feedback').toBuffer({ ...feedback, timestamp: -5 })],
    ['invalid-feedback', 'Feedback', json({ requestId: 'r', timestamp: 1 })],
    ['invalid-feedback', 'Feedback', json({ requestId: 'r', timestamp: 1, actualLabel: null, correct: null })],
    ['invalid-feedback', 'Feedback', json({ requestId: 'r', timestamp: 1, actualLabel: '', correct: true })],
    ['invalid-feedback', 'Feedback', schemaOf('Feedback').toBuffer({ ...feedback, actualLabel: null, correct: null })],
    ['unknown-schema-id', 'Request', encodeFramed('Request', 3, request)],
  ];

  it.each(cases)('%s for %s case %#', (code, name, bytes) => {
    const result = failure(decodeRecord(name, bytes, { maxBytes: 64 * 1024, writerSchema: (id) => (id === 1 ? schemaOf('Request') : undefined) }));
    expect(result.reasonCode).toBe(code);
    expect(result.reason.length).toBeGreaterThan(0);
  });

  it('covers every decoder reason code', () => {
    const decoderCodes = Object.values(ReasonCodes).filter((c) => c !== 'unknown-category' && c !== 'duplicate-prediction' && c !== 'future-timestamp');
    expect(new Set(cases.map(([code]) => code))).toEqual(new Set(decoderCodes));
  });

  it('says "not a JSON object" for text that is a JSON array, a JSON string or no JSON, not "not a valid Avro ..."', () => {
    const reason = (text: string): string => failure(decodeRecord('Prediction', Buffer.from(text, 'utf8'), { maxBytes: 64 * 1024 })).reason;
    expect(reason('[{"requestId":"r-1"}]')).toBe('not a JSON object: the value is a JSON array');
    expect(reason('"r-1"')).toBe('not a JSON object: the value is a JSON string');
    expect(reason('42')).toBe('not a JSON object: the value is a JSON number');
    expect(reason('not json at all')).toBe('not a JSON object: the value is text but not JSON');
    // Bytes that are not text are still reported as what Avro could not read.
    expect(reason(String.fromCharCode(0x02, 0xff, 0x10))).toMatch(/^not a valid Avro Prediction/);
  });

  it('reports requestId first when several rules are broken', () => {
    expect(failure(decodeRecord('Request', json({ category: '', features: { a: 'x' }, timestamp: -1 }), opts)).reasonCode).toBe('missing-request-id');
  });
});

describe('decodeRecord: robustness', () => {
  it('never throws on random bytes, and rejects almost all of them', () => {
    const lookup = (id: number) => (id === 1 ? schemaOf('Prediction') : id === 2 ? schemaOf('Feedback') : undefined);
    const names = ['Request', 'Prediction', 'Feedback'] as const;
    const prefixes = [Buffer.alloc(0), Buffer.from([0, 0, 0, 0, 1]), Buffer.from([0, 0, 0, 0, 2]), Buffer.from('{"requestId":')];
    let accepted = 0;
    const started = Date.now();
    for (let i = 0; i < 6000; i++) {
      const body = randomBytes(Math.floor(Math.random() * 200));
      const bytes = Buffer.concat([prefixes[i % prefixes.length] as Buffer, body]);
      for (const name of names) {
        const result = decodeRecord(name, bytes, { maxBytes: 150, writerSchema: lookup });
        expect(typeof result.ok).toBe('boolean');
        if (result.ok) accepted++;
        else expect(typeof result.reasonCode).toBe('string');
      }
    }
    expect(accepted).toBeLessThan(50);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('never throws on valid encodings with flipped bytes', () => {
    const encodings = [
      schemaOf('Prediction').toBuffer(prediction),
      encodeFramed('Prediction', 1, prediction),
      json(prediction),
    ];
    for (let i = 0; i < 5000; i++) {
      const bytes = Buffer.from(encodings[i % encodings.length] as Buffer);
      for (let flips = 1 + (i % 4); flips > 0; flips--) bytes[Math.floor(Math.random() * bytes.length)] = Math.floor(Math.random() * 256);
      const result = decodeRecord<Prediction>('Prediction', bytes, { maxBytes: 4096, writerSchema: () => schemaOf('Prediction') });
      if (result.ok) {
        expect(result.value.requestId.length).toBeGreaterThan(0);
        for (const v of Object.values(result.value.features)) expect(Number.isFinite(v)).toBe(true);
      }
    }
  });

  it('rejects a raw Avro record announcing billions of map entries quickly', () => {
    const bytes = Buffer.from([0x02, 0x61, 0x02, 0x62, 0xfe, 0xff, 0xff, 0xff, 0x0f, 0x00]);
    const started = Date.now();
    expect(failure(decodeRecord('Request', bytes, opts)).reasonCode).toBe('undecodable');
    expect(Date.now() - started).toBeLessThan(1000);
  });
});
