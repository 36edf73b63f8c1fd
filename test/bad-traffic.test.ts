/**
 * Bad and messy traffic on the embedded engine: every record that cannot be processed ends in
 * `dead-letters` (or its documented topic) with a precise reason, and the engine keeps running.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../config/config.js';
import { jsonLinesToRecords } from '../access/embedded.js';
import { PrivacyPolicy } from '../processors/privacy.js';
import { runReplay } from '../replay/topology.js';
import { HARNESS_PRIVACY_KEY, startHarness, type EngineHarness } from './helpers/engine-harness.js';

const T0 = 1_767_603_600_000;

const prediction = (requestId: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  requestId,
  category: 'loan',
  features: { income: 5200.5, age: 41 },
  attributes: { name: 'Ada Lovelace', phone: '+44 7700 900123' },
  predictedLabel: 'approve',
  scores: { approve: 0.8, reject: 0.2 },
  modelVersion: 'v1',
  requestTimestamp: T0,
  timestamp: T0,
  ...extra,
});

let harness: EngineHarness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

describe('invalid timestamps', () => {
  it('produce keeps a fractional or negative timestamp out of the log timestamp', () => {
    const lines = [
      JSON.stringify(prediction('r-frac', { timestamp: T0 + 0.5 })),
      JSON.stringify(prediction('r-neg', { timestamp: -5 })),
      JSON.stringify(prediction('r-ok')),
    ].join('\n');
    const records = jsonLinesToRecords('predictions', lines, 'requestId', 42);
    // Before the first valid timestamp: the next one's; never the wall clock while the input has one.
    expect(records.map((r) => r.timestamp)).toEqual([T0, T0, T0]);
  });

  it('produce stamps a line without a valid timestamp with the previous valid one, the wall clock only when none has one', () => {
    const lines = ['not json at all', JSON.stringify(prediction('r-1', { timestamp: T0 + 10 })), '[1, 2]', JSON.stringify(prediction('r-2', { timestamp: T0 + 20 })), '{"requestId":"r-3"}'].join('\n');
    expect(jsonLinesToRecords('predictions', lines, 'requestId', 42).map((r) => r.timestamp)).toEqual([T0 + 10, T0 + 10, T0 + 10, T0 + 20, T0 + 20]);
    expect(jsonLinesToRecords('predictions', 'not json\n"a string"', 'requestId', 42).map((r) => r.timestamp)).toEqual([42, 42]);
  });

  it('a record whose log timestamp is fractional is dead-lettered, not a crash', async () => {
    harness = await startHarness({ config: { categories: { loan: { classes: ['approve', 'reject'] } } } });
    harness.sendRaw('predictions', Buffer.from(JSON.stringify(prediction('r-frac', { timestamp: T0 + 0.5 }))), { key: 'r-frac', timestamp: T0 + 0.5 });
    harness.send('prediction', prediction('r-ok'));
    const dead = (await harness.records('dead-letters')).map((r) => ({ code: r.headers['sampleloop.dlq.reason.code'], value: r.value as { sourceTimestamp: number } }));
    expect(dead.map((d) => d.code)).toEqual(['invalid-timestamp']);
    expect(dead[0]?.value.sourceTimestamp).toBe(T0);
    harness.flush();
    expect(await harness.outputs('unmatched')).toHaveLength(1);
  });
});

describe('a processing failure that stops the engine', () => {
  it('commits nothing of the failed step, so a restart processes the record again', async () => {
    harness = await startHarness({ config: { categories: { loan: { classes: ['approve', 'reject'] } } } });
    harness.send('prediction', prediction('r-before'));
    const { app } = harness;
    const task = app.runtime.taskList()[0];
    if (!task) throw new Error('no task');
    // The dead letter itself fails (as an unencodable one did): the error escapes the task after it
    // took the record's offset.
    (task as unknown as { sendDeadLetter: () => never }).sendDeadLetter = () => {
      throw new Error('simulated fatal failure');
    };
    app.log.append([{ topic: 'predictions', key: null, value: Buffer.from('{"requestId": "r-poison", "cat'), timestamp: T0, headers: {} }]);
    app.log.append([{ topic: 'predictions', key: Buffer.from('r-after'), value: Buffer.from(JSON.stringify(prediction('r-after'))), timestamp: T0, headers: {} }]);
    expect(() => app.runtime.step()).toThrow('simulated fatal failure');
    await harness.restart(); // closes the failed app (which must not commit the failed step), then starts again
    harness.app.runtime.runUntilIdle();
    harness.flush();
    const dead = await harness.records('dead-letters');
    expect(dead.map((r) => [r.headers['sampleloop.dlq.reason.code'], r.headers['sampleloop.dlq.source.offset']])).toEqual([['undecodable', '1']]);
    const unmatched = (await harness.outputs('unmatched')) as Array<{ prediction: { requestId: string } }>;
    expect(unmatched.map((u) => u.prediction.requestId).sort()).toEqual(['r-after', 'r-before']);
  });
});

describe('dead letters of records that a re-encoding cannot vouch for are sealed', () => {
  const NAME = 'Grace Hopper';
  const PHONE = '+1 555 0100 777';

  async function deadLetters(h: EngineHarness): Promise<Array<{ code: string; encoding: string; text: string }>> {
    return (await h.records('dead-letters')).map((r) => ({
      code: r.headers['sampleloop.dlq.reason.code'] ?? '',
      encoding: r.headers['sampleloop.dlq.payload.encoding'] ?? '',
      text: JSON.stringify(r),
    }));
  }

  it('an attribute holding an object, a field outside the schema, an attributes array: sealed, no clear value', async () => {
    harness = await startHarness({ config: { categories: { loan: { classes: ['approve', 'reject'] } } } });
    const bad = [
      prediction('r-nested', { attributes: { customer: { name: NAME, phone: PHONE } } }),
      prediction('r-raw-request', { features: { income: 'x' }, rawRequest: { customer: { name: NAME, phone: PHONE } } }),
      prediction('r-attr-array', { attributes: [NAME, PHONE] }),
    ];
    for (const value of bad) harness.send('prediction', value);
    const letters = await deadLetters(harness);
    expect(letters.map((l) => [l.code, l.encoding])).toEqual([
      ['wrong-type', 'sealed'],
      ['wrong-type', 'sealed'],
      ['wrong-type', 'sealed'],
    ]);
    for (const l of letters) for (const secret of [NAME, PHONE, PHONE.slice(0, -4)]) expect(l.text).not.toContain(secret);
  });

  it('a record nested too deeply to re-encode is a dead letter with its own reason, not a processing error', async () => {
    harness = await startHarness({ config: { categories: { loan: { classes: ['approve', 'reject'] } } } });
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
    const line = JSON.stringify(prediction('r-deep', { features: '@@' })).replace('"@@"', deep);
    harness.sendRaw('predictions', Buffer.from(line), { key: 'r-deep', timestamp: T0 });
    const letters = await deadLetters(harness);
    expect(letters.map((l) => [l.code, l.encoding])).toEqual([['wrong-type', 'sealed']]);
    const text = await harness.app.metrics.registry.metrics();
    expect(text).toContain('sampleloop_dead_letters_total{topology="samples",reason="wrong-type"} 1');
    expect(text).not.toContain('processing-error');
  });

  it('mask rules alone: an unparsable record is sealed with the configured key (recoverable), never kept in clear', async () => {
    harness = await startHarness({ config: { privacy: { alwaysSensitive: [{ field: 'phone', action: 'mask', keepLast: 4 }] } } });
    const original = `{"requestId": "r-broken", "category": "loan", "attributes": {"phone": "${PHONE}"}, "features": {`;
    harness.sendRaw('predictions', Buffer.from(original), { key: null, timestamp: T0 });
    const [letter] = await harness.records('dead-letters');
    expect(letter?.headers['sampleloop.dlq.reason.code']).toBe('undecodable');
    expect(letter?.headers['sampleloop.dlq.payload.encoding']).toBe('sealed');
    expect(JSON.stringify(letter)).not.toContain(PHONE);
    const policy = new PrivacyPolicy({ alwaysSensitive: [], categories: {} }, HARNESS_PRIVACY_KEY);
    const sealed = Buffer.from((letter?.value as { payload: { base64: string } }).payload.base64, 'base64');
    expect(policy.openSealed(sealed).toString('utf8')).toBe(original);
  });

  it('no rule names a sensitive attribute: an unparsable record keeps its original bytes', async () => {
    harness = await startHarness({ config: { privacy: { alwaysSensitive: [] } } });
    const original = '{"requestId": "r-broken", "category": "loan", "features": {';
    harness.sendRaw('predictions', Buffer.from(original), { key: null, timestamp: T0 });
    const [letter] = await harness.records('dead-letters');
    expect(letter?.headers['sampleloop.dlq.payload.encoding']).toBe('original');
    expect(JSON.stringify(letter)).toContain('r-broken');
  });
});

describe('reason texts never quote field values (docs/operations.md)', () => {
  it('unknown category and duplicate prediction name the problem without the category or request ID', async () => {
    harness = await startHarness({ config: { input: { rejectUnknownCategories: true }, categories: { loan: { classes: ['approve', 'reject'] } } } });
    harness.send('prediction', prediction('r-secret-id-1', { category: 'Ada Lovelace' }));
    harness.send('prediction', prediction('r-secret-id-2'));
    harness.send('prediction', prediction('r-secret-id-2'));
    harness.send('prediction', prediction('r-3', { attributes: { name: { first: 'Ada' } } }));
    const reasons = (await harness.records('dead-letters')).map((r) => [r.headers['sampleloop.dlq.reason.code'], r.headers['sampleloop.dlq.reason'], (r.value as { reason: string }).reason]);
    expect(reasons).toEqual([
      ['unknown-category', "category is not configured (known: loan); the record's category is in the payload", "category is not configured (known: loan); the record's category is in the payload"],
      ['duplicate-prediction', 'a prediction for this request ID is already in the join window; the first one is kept', 'a prediction for this request ID is already in the join window; the first one is kept'],
      ['wrong-type', 'attributes.name must be a string, got an object', 'attributes.name must be a string, got an object'],
    ]);
  });
});

describe('replay accounts for every staged record', () => {
  it('the summary counts feedback the join only counts (duplicate-feedback under duplicates = first) and the dead letters', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sampleloop-bad-replay-'));
    try {
      const keyFile = join(dir, 'k.key');
      writeFileSync(keyFile, '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff');
      const config = parseConfig({
        dataDir: join(dir, 'data'),
        log: { level: 'silent' },
        privacy: { keyFile, keyEnv: 'SAMPLELOOP_BAD_TRAFFIC_UNUSED_KEY' },
        join: { duplicates: 'first' },
        input: { rejectUnknownCategories: true },
        categories: { loan: { classes: ['approve', 'reject'] } },
      });
      const gateway = join(dir, 'gateway.jsonl');
      const business = join(dir, 'business.jsonl');
      writeFileSync(gateway, [prediction('k-1'), prediction('k-2', { category: 'mortgage' }), prediction('k-3'), prediction('k-3', { timestamp: T0 + 1 })].map((p) => JSON.stringify(p)).join('\n'));
      writeFileSync(
        business,
        [
          { requestId: 'k-1', timestamp: T0 + 100, actualLabel: 'approve' },
          { requestId: 'k-1', timestamp: T0 + 200, actualLabel: 'reject' },
          { requestId: 'k-1', timestamp: T0 + 300 },
        ]
          .map((f) => JSON.stringify(f))
          .join('\n'),
      );
      const summary = await runReplay({ config, gateway: [gateway], business: [business], out: `file:${join(dir, 'out.jsonl')}` });
      expect(summary.records).toEqual({ gateway: 4, business: 3 });
      expect(summary.rejected).toBe(1);
      expect(summary.staged).toEqual({ predictions: 4, feedback: 2 });
      expect(summary.written).toMatchObject({ samples: 1, unmatched: 1, deadLetters: 2 });
      expect(summary.events).toEqual({
        'rejected-unknown-category': 1,
        'duplicate-prediction': 1,
        matched: 1,
        'duplicate-feedback': 1,
        unmatched: 1,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
