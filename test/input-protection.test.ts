/**
 * Ingest protection (processors/input-protection.ts) and the trimming of processed input
 * (embedded.inputRetentionMs), on the embedded log: what the input topics hold after `produce`,
 * that the engine's outputs are the same whether the input was protected at ingest or not (the
 * engine tokenizes nothing twice; unparsable records keep their dead-letter reason), and that input
 * records are deleted only once every group has committed past them and the retention has passed.
 */
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig, type ConfigInput } from '../config/config.js';
import { startEmbeddedApp, ingressAccess, type EmbeddedApp } from '../app/embedded.js';
import { silentLogger } from '../engine/logger.js';
import { INGEST_HEADERS } from '../processors/input-protection.js';
import { isSealed } from '../processors/privacy.js';
import type { SourceRecord } from '../engine/record.js';

const KEY = Buffer.from('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'hex');
const T0 = Date.UTC(2026, 0, 5, 9, 0, 0);
const MINUTE = 60_000;
const base = mkdtempSync(join(tmpdir(), 'sampleloop-input-protection-'));
const keyFile = join(base, 'key');
writeFileSync(keyFile, KEY.toString('hex'));

afterAll(() => rmSync(base, { recursive: true, force: true }));

const token = (field: string, value: string): string => `tok_${createHmac('sha256', KEY).update(`${field}\u0000${value}`, 'utf8').digest('base64url').slice(0, 22)}`;

function prediction(requestId: string, timestamp: number, overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    requestId,
    category: 'loan',
    features: { amount: 10 },
    attributes: { name: `Name ${requestId}`, phone: '+44 7700 900123', idNumber: `ID-${requestId}-77`, channel: 'web' },
    predictedLabel: 'approve',
    scores: { approve: 0.6, deny: 0.4 },
    modelVersion: '1',
    requestTimestamp: timestamp,
    timestamp,
    ...overrides,
  });
}

const PREDICTIONS = [
  prediction('p-1', T0),
  prediction('p-2', T0 + 1000, { rawRequest: { ssn: '078-05-1120' } }),
  prediction('bad-type', T0 + 2000, { features: { amount: 'x' } }),
  prediction('bad-nested', T0 + 3000, { attributes: { name: 'Nested Person', extra: { phone: '+1 555 0100' } } }),
  'not json, phone +44 7700 900999',
  '[1, 2, "Array Person"]',
  prediction('p-3', T0 + 4000),
].join('\n');
const FEEDBACK = [
  JSON.stringify({ requestId: 'p-1', timestamp: T0 + MINUTE, actualLabel: 'deny' }),
  JSON.stringify({ requestId: 'p-2', timestamp: T0 + MINUTE, correct: true }),
  '{"requestId": "cut", "timestamp": ',
  JSON.stringify({ requestId: 'close', timestamp: T0 + 90 * MINUTE, actualLabel: 'deny' }),
].join('\n');

async function app(name: string, overrides: ConfigInput = {}): Promise<EmbeddedApp> {
  return startEmbeddedApp(
    parseConfig({
      ...overrides,
      dataDir: join(base, name),
      join: { beforeMs: MINUTE, afterMs: 10 * MINUTE, graceMs: MINUTE, idleAdvance: false },
      categories: { loan: { classes: ['approve', 'deny'] } },
      privacy: { keyEnv: 'SAMPLELOOP_INPUT_PROTECTION_TEST_UNSET', keyFile, ...(overrides.privacy ?? {}) },
      log: { level: 'silent' },
    }),
    { logger: silentLogger() },
  );
}

function stored(a: EmbeddedApp, topic: string): SourceRecord[] {
  return a.log.read(topic, 0, 0, 1000);
}

/** What the engine made of the input, payload encodings aside. */
async function outputs(a: EmbeddedApp): Promise<Record<string, unknown>> {
  const access = ingressAccess(a);
  const values = async (topic: string): Promise<unknown[]> => (await access.read(topic)).map((r) => r.value);
  const deadLetters = (await access.read('dead-letters')).map((d) => {
    const v = d.value as Record<string, unknown>;
    return { key: d.key, reasonCode: v.reasonCode, reason: v.reason, sourceTopic: v.sourceTopic, sourceOffset: v.sourceOffset, stage: v.stage };
  });
  return { samples: await values('samples'), unmatched: await values('unmatched'), orphans: await values('orphans'), late: await values('late'), deadLetters };
}

describe('ingest protection on the embedded log', () => {
  it('stores decodable records protected, invalid JSON protected in place, everything else sealed with its reason', async () => {
    const a = await app('stored');
    try {
      const access = ingressAccess(a);
      await access.produce('predictions', PREDICTIONS);
      await access.produce('feedback', FEEDBACK);
      const records = stored(a, 'predictions');
      expect(records.map((r) => r.key?.toString() ?? null)).toEqual(['p-1', 'p-2', 'bad-type', 'bad-nested', null, null, 'p-3']);
      const [p1, p2, badType, badNested, notJson, array, p3] = records as [SourceRecord, SourceRecord, SourceRecord, SourceRecord, SourceRecord, SourceRecord, SourceRecord];
      const p1Value = JSON.parse(p1.value!.toString()) as { attributes: Record<string, string> };
      expect(p1Value.attributes).toEqual({ name: token('name', 'Name p-1'), phone: '***********0123', idNumber: token('idNumber', 'ID-p-1-77'), channel: 'web' });
      // A field outside the schema (which the engine drops) is not stored either.
      expect(Object.keys(JSON.parse(p2.value!.toString()) as object)).not.toContain('rawRequest');
      expect(p2.value!.toString()).not.toContain('078-05-1120');
      // Invalid but protectable: the same JSON, attributes protected, still invalid for the same reason.
      const bad = JSON.parse(badType.value!.toString()) as { features: unknown; attributes: Record<string, string> };
      expect(bad.features).toEqual({ amount: 'x' });
      expect(bad.attributes.name).toBe(token('name', 'Name bad-type'));
      for (const [record, code] of [[badNested, 'wrong-type'], [notJson, 'undecodable'], [array, 'undecodable']] as const) {
        expect(isSealed(record.value!)).toBe(true);
        expect(record.headers[INGEST_HEADERS.payload]).toBe('sealed');
        expect(record.headers[INGEST_HEADERS.reasonCode]).toBe(code);
      }
      expect(JSON.parse(p3.value!.toString())).toMatchObject({ requestId: 'p-3', timestamp: T0 + 4000 });
      expect(p3.timestamp).toBe(T0 + 4000);
      const cut = stored(a, 'feedback')[2]!;
      expect(isSealed(cut.value!)).toBe(true);
      // Nothing raw anywhere in the stored input.
      const all = [...records, ...stored(a, 'feedback')].map((r) => r.value!.toString('latin1')).join('\n');
      for (const raw of ['Name p-1', '900123', '900999', 'Nested Person', 'Array Person', '+1 555 0100', '078-05-1120']) expect(all).not.toContain(raw);
      // Protecting again changes nothing (tokens are not tokenized twice, masks are idempotent, sealed stays sealed).
      const again = a.ingest!.protectRecords(records.map((r) => ({ topic: r.topic, key: r.key, value: r.value, timestamp: r.timestamp, headers: r.headers })));
      expect(again.map((r) => r.value)).toEqual(records.map((r) => r.value));
    } finally {
      await a.close();
    }
  });

  it('the engine makes the same samples, side outputs and dead-letter reasons from protected input as from raw input', async () => {
    const runs: Array<Record<string, unknown>> = [];
    for (const protectOnIngest of [true, false]) {
      const a = await app(`same-${String(protectOnIngest)}`, { privacy: { protectOnIngest } });
      try {
        const access = ingressAccess(a);
        await access.produce('predictions', PREDICTIONS);
        await access.produce('feedback', FEEDBACK);
        a.runtime.runUntilIdle();
        a.runtime.endOfInput();
        runs.push(await outputs(a));
      } finally {
        await a.close();
      }
    }
    const [on, off] = runs as [Record<string, unknown>, Record<string, unknown>];
    expect(on).toEqual(off);
    const samples = on.samples as Array<{ requestId: string; attributes: Record<string, string> }>;
    expect(samples.map((s) => s.requestId).sort()).toEqual(['p-1', 'p-2']);
    expect(samples.find((s) => s.requestId === 'p-1')!.attributes.name).toBe(token('name', 'Name p-1'));
    expect((on.deadLetters as Array<{ key: string | null; reasonCode: string }>).map((d) => `${String(d.key)}:${d.reasonCode}`).sort()).toEqual([
      'bad-nested:wrong-type',
      'bad-type:wrong-type',
      'null:undecodable',
      'null:undecodable',
      'null:undecodable',
    ]);
  });

  it('privacy.protectOnIngest=false stores the input as produced', async () => {
    const a = await app('off', { privacy: { protectOnIngest: false } });
    try {
      await ingressAccess(a).produce('predictions', prediction('raw', T0));
      expect(stored(a, 'predictions')[0]!.value!.toString()).toContain('Name raw');
    } finally {
      await a.close();
    }
  });
});

describe('trimming processed input (embedded.inputRetentionMs)', () => {
  it('deletes input records every group has committed past, once the retention has passed; never the compacted samples or the models ledger', async () => {
    const a = await app('trim', { embedded: { inputRetentionMs: 10_000 } });
    try {
      const access = ingressAccess(a);
      await access.produce('predictions', [prediction('t-1', T0), prediction('t-2', T0 + 1000)].join('\n'));
      await access.produce('feedback', JSON.stringify({ requestId: 't-1', timestamp: T0 + MINUTE, actualLabel: 'approve' }));
      await access.produce('models', '{"not": "a ledger record, but it must stay"}');
      const now = 1_000_000;
      // Nothing processed yet: nothing to trim, whatever the time.
      expect(a.trimProcessedInput(now)).toBe(0);
      expect(a.trimProcessedInput(now + 20_000)).toBe(0);
      a.runtime.runUntilIdle();
      a.runtime.commit();
      // Processed, but the retention has not passed since the groups committed.
      expect(a.trimProcessedInput(now + 30_000)).toBe(0);
      expect(stored(a, 'predictions')).toHaveLength(2);
      // Produced after that mark: stays even when the mark is due.
      await access.produce('predictions', prediction('t-3', T0 + 2000));
      a.runtime.runUntilIdle();
      a.runtime.commit();
      expect(a.trimProcessedInput(now + 40_000)).toBe(3);
      expect(stored(a, 'predictions').map((r) => r.key?.toString())).toEqual(['t-3']);
      expect(stored(a, 'feedback')).toEqual([]);
      expect(a.log.endOffset('predictions', 0)).toBe(3);
      expect(stored(a, 'samples').map((r) => r.key?.toString())).toEqual(['t-1']);
      expect(stored(a, 'models')).toHaveLength(1);
      expect(a.trimProcessedInput(now + 50_000)).toBe(1);
      expect(stored(a, 'predictions')).toEqual([]);
    } finally {
      await a.close();
    }
  });

  it('keeps everything when embedded.inputRetentionMs is null', async () => {
    const a = await app('keep', { embedded: { inputRetentionMs: null } });
    try {
      await ingressAccess(a).produce('predictions', prediction('k-1', T0));
      a.runtime.runUntilIdle();
      a.runtime.commit();
      expect(a.trimProcessedInput(1)).toBe(0);
      expect(a.trimProcessedInput(10 ** 12)).toBe(0);
      expect(stored(a, 'predictions')).toHaveLength(1);
    } finally {
      await a.close();
    }
  });
});
