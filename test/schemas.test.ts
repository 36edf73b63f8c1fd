import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { SchemaError } from '../engine/errors.js';
import { packageRoot, schemaDir } from '../config/paths.js';
import { isBoundedType, parseSchema, schemaJson, schemaNames, schemaOf, type SchemaName } from '../schemas/index.js';
import { LocalSchemaRegistry, memoryRegistryStorage, type RegistryEntry, type RegistryStorage } from '../schemas/registry.js';
import type { DeadLetter, LabeledSample, LateRecord, Prediction, SchemaValueTypes } from '../schemas/types.js';

const prediction: Prediction = {
  requestId: 'r-1',
  category: 'loan',
  features: { income: 5200.5, age: 41 },
  attributes: { city: 'Lyon', phone: '*******1234' },
  predictedLabel: 'approve',
  scores: { approve: 0.8, reject: 0.2 },
  modelVersion: 'v3',
  modelHash: 'ab'.repeat(32),
  requestTimestamp: 1_700_000_000_000,
  timestamp: 1_700_000_000_250,
};

const samples: { [N in SchemaName]: SchemaValueTypes[N] } = {
  Request: { requestId: 'r-1', category: 'loan', features: { income: 1 }, attributes: {}, timestamp: 1, source: 'web' },
  Prediction: prediction,
  Feedback: { requestId: 'r-1', timestamp: 2, source: '', actualLabel: null, correct: true },
  LabeledSample: {
    requestId: 'r-1', category: 'loan', features: { income: 1 }, attributes: { name: 'tok_AAAAAAAAAAAAAAAAAAAAAA' },
    label: 'reject', labelSource: 'CORRECTED', predictedLabel: 'approve', modelVersion: 'v3',
    requestTimestamp: 1, feedbackTimestamp: 5, revision: 2, origin: 'replay',
  },
  UnmatchedPrediction: { prediction, reason: 'no-feedback', closedAt: 99 },
  OrphanFeedback: { feedback: { requestId: 'x', timestamp: 3, source: 's', actualLabel: 'a', correct: null }, reason: 'outside-window', predictionTimestamp: 1, closedAt: 7 },
  LateRecord: { kind: 'PREDICTION', requestId: 'r-1', recordTimestamp: 1, streamTime: 10, closeTime: 5, prediction, feedback: null },
  ReviewRecord: { prediction, feedback: { requestId: 'r-1', timestamp: 2, source: '', actualLabel: null, correct: false }, reason: 'incorrect-without-label' },
  DeadLetter: {
    reasonCode: 'oversize', reason: 'too big', sourceTopic: 'predictions', sourcePartition: 3, sourceOffset: 2 ** 40,
    sourceTimestamp: 1_700_000_000_000, key: Buffer.from('r-1'), payload: Buffer.from([0, 1, 2, 255]),
    payloadRedacted: false, stage: 'decode', failedAt: 1_700_000_000_001,
  },
  TrainingSnapshot: { topic: 'samples', offsets: [{ partition: 0, offset: 42 }], sampleCount: 40 },
  ModelVersion: {
    category: 'loan', version: '2', sequence: 2, createdAt: 1_700_000_000_000, onnx: Buffer.from([8, 10]), onnxUri: null,
    modelSha256: 'cd'.repeat(32), featureNames: ['income'], classes: ['approve', 'reject'], metrics: { holdoutAccuracy: 0.91 },
    trainingSnapshot: { topic: 'samples', offsets: [{ partition: 0, offset: 42 }], sampleCount: 40 }, trainer: 'sampleloop-logreg/1',
    prevRecordHash: 'ef'.repeat(32), recordHash: '01'.repeat(32),
    signer: Buffer.alloc(32, 7).toString('base64'), signature: Buffer.alloc(64, 9).toString('base64'),
  },
  RetrainTrigger: {
    triggerId: 'loan-2-1', category: 'loan', reason: 'sample-count', details: { newSamples: 500 }, servingVersion: '2',
    snapshot: { topic: 'samples', offsets: [{ partition: 0, offset: 42 }], sampleCount: 40 }, createdAt: 1_700_000_000_000,
    driftedFeatures: [{ feature: 'income', psi: 0.31 }],
  },
};

describe('paths', () => {
  it('finds the package root and the schema directory', () => {
    const root = packageRoot();
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string };
    expect(pkg.name).toBe('sampleloop');
    expect(schemaDir()).toBe(join(root, 'schemas'));
    for (const name of schemaNames) expect(existsSync(join(schemaDir(), `${name}.avsc`))).toBe(true);
  });
});

describe('schemas', () => {
  it('lists the public schemas', () => {
    expect([...schemaNames]).toEqual([
      'Request', 'Prediction', 'Feedback', 'LabeledSample', 'UnmatchedPrediction',
      'OrphanFeedback', 'LateRecord', 'ReviewRecord', 'DeadLetter', 'TrainingSnapshot', 'ModelVersion', 'RetrainTrigger',
    ]);
  });

  it('loads each schema once, under the io.sampleloop namespace', () => {
    for (const name of schemaNames) {
      const type = schemaOf(name);
      expect(type.name).toBe(`io.sampleloop.${name}`);
      expect(schemaOf(name)).toBe(type);
      expect(isBoundedType(type)).toBe(true);
    }
  });

  it('round-trips a record of every schema through Avro binary', () => {
    for (const name of schemaNames) {
      const type = schemaOf(name);
      const value = samples[name];
      expect(type.isValid(value)).toBe(true);
      const decoded: unknown = type.fromBuffer(type.toBuffer(value));
      expect({ ...(decoded as object) }).toEqual(value);
    }
  });

  it('RetrainTrigger evolves compatibly: driftedFeatures is optional with a default, both ways', () => {
    const current = schemaOf('RetrainTrigger');
    const before = JSON.parse(schemaJson('RetrainTrigger')) as { fields: Array<{ name: string }> };
    before.fields = before.fields.filter((f) => f.name !== 'driftedFeatures');
    const previous = parseSchema(before);
    const { driftedFeatures: _drifted, ...old } = samples.RetrainTrigger;
    // a record written before the field existed reads with the default
    expect({ ...(current.fromBuffer(previous.toBuffer(old), current.createResolver(previous)) as object) }).toEqual({ ...old, driftedFeatures: [] });
    // a reader of the previous version skips the new field
    expect({ ...(previous.fromBuffer(current.toBuffer(samples.RetrainTrigger), previous.createResolver(current)) as object) }).toEqual(old);
  });

  it('keeps the public field order', () => {
    const fieldNames = (name: SchemaName) => (schemaOf(name) as unknown as { fields: Array<{ name: string }> }).fields.map((f) => f.name);
    expect(fieldNames('Request')).toEqual(['requestId', 'category', 'features', 'attributes', 'timestamp', 'source']);
    expect(fieldNames('Prediction')).toEqual([
      'requestId', 'category', 'features', 'attributes', 'predictedLabel', 'scores', 'modelVersion', 'modelHash', 'requestTimestamp', 'timestamp',
    ]);
    expect(fieldNames('Feedback')).toEqual(['requestId', 'timestamp', 'source', 'actualLabel', 'correct']);
    expect(fieldNames('LabeledSample')).toEqual([
      'requestId', 'category', 'features', 'attributes', 'label', 'labelSource', 'predictedLabel', 'modelVersion',
      'requestTimestamp', 'feedbackTimestamp', 'revision', 'origin',
    ]);
    expect(fieldNames('UnmatchedPrediction')).toEqual(['prediction', 'reason', 'closedAt']);
    expect(fieldNames('OrphanFeedback')).toEqual(['feedback', 'reason', 'predictionTimestamp', 'closedAt']);
    expect(fieldNames('LateRecord')).toEqual(['kind', 'requestId', 'recordTimestamp', 'streamTime', 'closeTime', 'prediction', 'feedback']);
    expect(fieldNames('ReviewRecord')).toEqual(['prediction', 'feedback', 'reason']);
    expect(fieldNames('DeadLetter')).toEqual([
      'reasonCode', 'reason', 'sourceTopic', 'sourcePartition', 'sourceOffset', 'sourceTimestamp', 'key', 'payload', 'payloadRedacted', 'stage', 'failedAt',
    ]);
  });

  it('documents every field and defines nested records only once (by reference)', () => {
    for (const name of schemaNames) {
      const raw = JSON.parse(readFileSync(join(schemaDir(), `${name}.avsc`), 'utf8')) as {
        doc?: string; namespace: string; fields: Array<{ name: string; doc?: string; type: unknown }>;
      };
      expect(raw.namespace).toBe('io.sampleloop');
      expect(raw.doc?.length).toBeGreaterThan(0);
      for (const field of raw.fields) expect(field.doc?.length, `${name}.${field.name}`).toBeGreaterThan(0);
      const text = JSON.stringify(raw.fields);
      for (const other of ['Prediction', 'Feedback']) {
        if (other !== name) expect(text).not.toContain(`"name":"${other}"`);
      }
    }
    const late = JSON.parse(readFileSync(join(schemaDir(), 'LateRecord.avsc'), 'utf8')) as { fields: Array<{ name: string; type: unknown }> };
    expect(late.fields.find((f) => f.name === 'prediction')?.type).toEqual(['null', 'io.sampleloop.Prediction']);
  });

  it('exposes enums and nullable unions as plain values', () => {
    const type = schemaOf('LabeledSample');
    const sample = samples.LabeledSample;
    const decoded = type.fromBuffer(type.toBuffer({ ...sample, feedbackTimestamp: null, labelSource: 'DEFAULT' })) as LabeledSample;
    expect(decoded.feedbackTimestamp).toBeNull();
    expect(decoded.labelSource).toBe('DEFAULT');
    expect(type.isValid({ ...sample, labelSource: 'GUESSED' })).toBe(false);
    expect(type.isValid({ ...sample, origin: 'batch' })).toBe(false);
    const late = schemaOf('LateRecord').fromBuffer(schemaOf('LateRecord').toBuffer(samples.LateRecord)) as LateRecord;
    expect(late.prediction?.scores).toEqual({ approve: 0.8, reject: 0.2 });
    const dead = schemaOf('DeadLetter').fromBuffer(schemaOf('DeadLetter').toBuffer({ ...samples.DeadLetter, key: null })) as DeadLetter;
    expect(dead.key).toBeNull();
    expect(dead.payload.equals(Buffer.from([0, 1, 2, 255]))).toBe(true);
  });

  it('schemaJson is self-contained, keeps docs, defaults and logical types, and parses alone', () => {
    for (const name of schemaNames) {
      const text = schemaJson(name);
      expect(schemaJson(name)).toBe(text);
      const standalone = avro.Type.forSchema(JSON.parse(text) as avro.Type);
      expect(standalone.name).toBe(`io.sampleloop.${name}`);
      expect(standalone.fromBuffer(schemaOf(name).toBuffer(samples[name]))).toBeTruthy();
    }
    const late = JSON.parse(schemaJson('LateRecord')) as { fields: Array<{ name: string; type: unknown; doc: string }> };
    const predictionField = late.fields.find((f) => f.name === 'prediction');
    expect(predictionField?.type).toMatchObject(['null', { type: 'record', name: 'Prediction' }]);
    expect(late.fields.find((f) => f.name === 'recordTimestamp')?.type).toEqual({ type: 'long', logicalType: 'timestamp-millis' });
    const feedback = JSON.parse(schemaJson('Feedback')) as { fields: Array<{ name: string; default?: unknown }> };
    expect(feedback.fields.find((f) => f.name === 'actualLabel')?.default).toBeNull();
    expect(feedback.fields.find((f) => f.name === 'source')?.default).toBe('');
  });

  it('bounds map block counts so garbage cannot make decoding loop', () => {
    const type = parseSchema({ type: 'record', name: 'R', fields: [{ name: 'a', type: 'string' }, { name: 'f', type: { type: 'map', values: 'double' } }] });
    const claimsBillions = Buffer.from([0x02, 0x61, 0xfe, 0xff, 0xff, 0xff, 0x0f]);
    const started = Date.now();
    expect(type.decode(claimsBillions, 0).offset).toBe(-1);
    expect(Date.now() - started).toBeLessThan(1000);
    const ok = type.toBuffer({ a: 'x', f: { b: 1.5, c: -2 } });
    expect(type.fromBuffer(ok)).toEqual({ a: 'x', f: { b: 1.5, c: -2 } });
  });

  it('still decodes arrays of zero-width items longer than the remaining bytes', () => {
    const type = parseSchema({ type: 'array', items: 'null' });
    const value = new Array<null>(50).fill(null);
    expect(type.fromBuffer(type.toBuffer(value))).toEqual(value);
    const strings = parseSchema({ type: 'array', items: 'string' });
    expect(strings.decode(Buffer.from([0xfe, 0xff, 0xff, 0xff, 0x0f, 0x02, 0x61]), 0).offset).toBe(-1);
  });

  it('rejects invalid schemas with SchemaError', () => {
    expect(() => parseSchema('{not json')).toThrow(SchemaError);
    expect(() => parseSchema({ type: 'record', name: 'X', fields: [{ name: 'a', type: 'nope' }] })).toThrow(SchemaError);
  });
});

describe('LocalSchemaRegistry', () => {
  it('assigns ids 1, 2, 3 per distinct schema, shared across subjects', async () => {
    const registry = new LocalSchemaRegistry(memoryRegistryStorage());
    const request = await registry.register('requests-value', schemaJson('Request'));
    const feedback = await registry.register('feedback-value', schemaJson('Feedback'));
    const again = await registry.register('requests-value', schemaJson('Request'));
    const otherSubject = await registry.register('archive-value', schemaJson('Request'));
    const prediction = await registry.register('predictions-value', schemaJson('Prediction'));
    expect([request, feedback, again, otherSubject, prediction]).toEqual([1, 2, 1, 1, 3]);
    expect(registry.latestId('archive-value')).toBe(1);
    expect(registry.schemaText(3)).toBe(schemaJson('Prediction'));
  });

  it('treats whitespace and key order as the same schema, but a changed default as a new one', async () => {
    const registry = new LocalSchemaRegistry();
    const compact = '{"type":"record","name":"A","fields":[{"name":"x","type":"int","default":1}]}';
    const reordered = '{ "fields": [ { "default": 1, "type": "int", "name": "x" } ],\n  "name": "A", "type": "record" }';
    const changed = '{"type":"record","name":"A","fields":[{"name":"x","type":"int","default":2}]}';
    expect(await registry.register('a', compact)).toBe(1);
    expect(await registry.register('b', reordered)).toBe(1);
    expect(await registry.register('a', changed)).toBe(2);
    expect(registry.latestId('a')).toBe(2);
  });

  it('looks up and caches types; unknown ids reject with SchemaError', async () => {
    const registry = new LocalSchemaRegistry();
    const id = await registry.register('feedback-value', schemaJson('Feedback'));
    const type = await registry.lookup(id);
    expect(registry.cached(id)).toBe(type);
    expect(type.name).toBe('io.sampleloop.Feedback');
    expect(isBoundedType(type)).toBe(true);
    expect(registry.cached(42)).toBeUndefined();
    await expect(registry.lookup(42)).rejects.toBeInstanceOf(SchemaError);
    await expect(registry.register('x', '{"type":"nope"}')).rejects.toBeInstanceOf(SchemaError);
    await expect(registry.register('', schemaJson('Feedback'))).rejects.toBeInstanceOf(SchemaError);
  });

  it('persists one entry per (subject, id) and restores ids from storage', async () => {
    const saved: RegistryEntry[] = [];
    const storage: RegistryStorage = { load: () => [...saved], save: (entry) => saved.push(entry) };
    const first = new LocalSchemaRegistry(storage);
    await first.register('requests-value', schemaJson('Request'));
    await first.register('requests-value', schemaJson('Request'));
    await first.register('archive-value', schemaJson('Request'));
    await first.register('feedback-value', schemaJson('Feedback'));
    expect(saved.map((e) => [e.id, e.subject])).toEqual([[1, 'requests-value'], [1, 'archive-value'], [2, 'feedback-value']]);

    const second = new LocalSchemaRegistry(storage);
    expect(second.cached(2)?.name).toBe('io.sampleloop.Feedback');
    expect(await second.register('feedback-value', schemaJson('Feedback'))).toBe(2);
    expect(await second.register('predictions-value', schemaJson('Prediction'))).toBe(3);
    expect(saved).toHaveLength(4);
  });

  it('refuses storage where one id maps to two schemas', () => {
    const storage: RegistryStorage = {
      load: () => [
        { id: 1, subject: 'a', schema: schemaJson('Request') },
        { id: 1, subject: 'b', schema: schemaJson('Feedback') },
      ],
      save: () => undefined,
    };
    expect(() => new LocalSchemaRegistry(storage)).toThrow(SchemaError);
  });
});
