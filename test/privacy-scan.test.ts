/**
 * Privacy leak scan: predictions carrying sensitive attributes are sent down every path of the
 * samples topology (samples, revisions, review, unmatched, orphans, late, every kind of dead letter,
 * duplicate predictions), then every byte the engine wrote outside the two input topics (record keys,
 * values, headers, the decoded values, and the whole state database) is searched for each raw sensitive
 * value and for the part of each masked value that masking must hide.
 */
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type SampleloopConfig } from '../config/config.js';
import { directAccess, toDisplay, type DisplayRecord } from '../access/embedded.js';
import { startEmbeddedApp, type EmbeddedApp } from '../app/embedded.js';
import { KEY_RECORD, partitionPrefix } from '../engine/embedded/log-codec.js';
import { silentLogger } from '../engine/logger.js';
import type { OutputRecord } from '../engine/record.js';
import { prefixEnd } from '../engine/state/rocks.js';

const KEY = Buffer.from('c0ffee00112233445566778899aabbccddeeff00112233445566778899aabbcc', 'hex');
const T0 = 1_750_000_000_000;
const MINUTE = 60_000;
const WINDOW = { beforeMs: MINUTE, afterMs: 60 * MINUTE, graceMs: 10 * MINUTE };
const INPUT_TOPICS = new Set(['predictions', 'feedback']);

/** Sensitive per category: `loan` adds its own fields; `misc` is not configured, so every rule applies to it. */
const SENSITIVE: Record<string, { tokenize: string[]; mask: Record<string, number> }> = {
  loan: { tokenize: ['idNumber', 'name', 'iban'], mask: { phone: 4, email: 3 } },
  intent: { tokenize: ['idNumber', 'name'], mask: { phone: 4 } },
  misc: { tokenize: ['idNumber', 'name', 'iban'], mask: { phone: 4, email: 3 } },
};

interface Person {
  name: string;
  phone: string;
  idNumber: string;
  iban: string;
  email: string;
}

const FIRST = ['Zofia', 'Ingrid', 'Mateo', 'Aisha', 'Kenji', 'Fatima', 'Jonas', 'Priya', 'Tomasz', 'Chloé', 'Søren', 'Dương'];
const LAST = ['Kowalczyk', 'Bergström', 'García', 'Okafor', 'Tanaka', 'Haddad', 'Müller', 'Patel', 'Nowak', 'Dubois', 'Ångström', 'Nguyễn'];

function person(n: number): Person {
  const d = String(100 + n).slice(-3);
  return {
    name: `${FIRST[n % FIRST.length]} ${LAST[(n * 5) % LAST.length]}-${n}`,
    phone: `+44 7700 900${d}`,
    idNumber: `9${String(10 + n).slice(-2)}-4${n % 10}-${String(6000 + n * 37).slice(-4)}`,
    iban: `DE89 3704 0044 0532 0130 ${d}`,
    email: `${FIRST[n % FIRST.length]!.toLowerCase()}.${n}@bank.example`,
  };
}

function expectedToken(field: string, value: string): string {
  return `tok_${createHmac('sha256', KEY).update(`${field}\u0000${value}`, 'utf8').digest('base64url').slice(0, 22)}`;
}

function masked(value: string, keepLast: number): string {
  const chars = Array.from(value);
  return '*'.repeat(chars.length - keepLast) + chars.slice(chars.length - keepLast).join('');
}

/** Every string that must never appear in output: raw sensitive values and the hidden part of masked ones. */
const forbidden = new Map<string, string>();

function remember(category: string, attributes: Record<string, string>, what: string): void {
  const rules = SENSITIVE[category] ?? SENSITIVE.misc!;
  for (const field of rules.tokenize) if (attributes[field] !== undefined) forbidden.set(attributes[field]!, `${what}: ${field}`);
  for (const [field, keep] of Object.entries(rules.mask)) {
    const value = attributes[field];
    if (value === undefined) continue;
    forbidden.set(value, `${what}: ${field}`);
    forbidden.set(Array.from(value).slice(0, -keep).join(''), `${what}: ${field} without its last ${keep}`);
  }
}

function attributesOf(p: Person, category: string): Record<string, string> {
  const base: Record<string, string> = { name: p.name, phone: p.phone, idNumber: p.idNumber, country: 'DE', channel: 'web' };
  return category === 'intent' ? base : { ...base, iban: p.iban, email: p.email };
}

function predictionJson(requestId: string | undefined, category: string, who: Person, timestamp: number, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const attributes = attributesOf(who, category);
  remember(category, attributes, requestId ?? '(no requestId)');
  const classes = category === 'loan' ? ['approve', 'deny'] : category === 'intent' ? ['billing', 'support', 'sales', 'cancel'] : ['yes', 'no'];
  const scores = Object.fromEntries(classes.map((c, i) => [c, i === 0 ? 0.7 : 0.3 / (classes.length - 1)]));
  return {
    ...(requestId === undefined ? {} : { requestId }),
    category,
    features: { amount: 1200.5, tenure: 3 },
    attributes,
    predictedLabel: classes[0],
    scores,
    modelVersion: '2.1.0',
    requestTimestamp: timestamp,
    timestamp,
    ...overrides,
  };
}

function input(topic: 'predictions' | 'feedback', value: Record<string, unknown>, timestamp = value.timestamp as number): OutputRecord {
  const key = typeof value.requestId === 'string' ? Buffer.from(value.requestId) : null;
  return { topic, key, value: Buffer.from(JSON.stringify(value)), timestamp, headers: {} };
}

function feedback(requestId: string, timestamp: number, content: { actualLabel?: string; correct?: boolean }): OutputRecord {
  return input('feedback', { requestId, timestamp, ...content });
}

interface Hit {
  topic: string;
  offset: number;
  where: string;
  value: string;
  why: string;
}

function scanBytes(bytes: Buffer | null, where: string, at: { topic: string; offset: number }, hits: Hit[]): void {
  if (bytes === null || bytes.length === 0) return;
  for (const [value, why] of forbidden) if (bytes.includes(Buffer.from(value, 'utf8'))) hits.push({ ...at, where, value, why });
}

describe('privacy: no raw sensitive value in any output', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'sampleloop-privacy-scan-'));
  const keyFile = join(dataDir, 'test-privacy.key');
  let config: SampleloopConfig;
  let app: EmbeddedApp;
  const [alice, bob, carol, dave, erin, frank, grace, heidi, ivan, judy, ken, lena, mia, nils] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14].map(person) as [
    Person, Person, Person, Person, Person, Person, Person, Person, Person, Person, Person, Person, Person, Person,
  ];
  const people = [alice, bob, carol, dave, erin, frank, grace, heidi, ivan, judy, ken, lena, mia, nils];
  /** Same name as `alice`, in another category and another request: must get the same token. */
  const aliceTwin: Person = { ...bob, name: alice.name };

  const sendAndProcess = (records: OutputRecord[]): void => {
    app.log.append(records);
    app.runtime.runUntilIdle();
  };

  beforeAll(async () => {
    writeFileSync(keyFile, KEY.toString('hex'));
    config = parseConfig({
      dataDir,
      join: { ...WINDOW, idleAdvance: false },
      categories: {
        loan: { classes: ['approve', 'deny'], sensitive: [{ field: 'iban', action: 'tokenize' }, { field: 'email', action: 'mask', keepLast: 3 }] },
        intent: { classes: ['billing', 'support', 'sales', 'cancel'] },
      },
      privacy: { keyEnv: 'SAMPLELOOP_PRIVACY_SCAN_UNSET_KEY', keyFile },
      log: { level: 'silent' },
    });
    app = await startEmbeddedApp(config, { logger: silentLogger() });

    sendAndProcess([
      // samples: a match, then a newer correction (revision 1)
      input('predictions', predictionJson('s-1', 'loan', alice, T0)),
      feedback('s-1', T0 + MINUTE, { actualLabel: 'approve' }),
      feedback('s-1', T0 + 2 * MINUTE, { actualLabel: 'deny' }),
      // review (4 classes, correct = false, no label), then unmatched when it closes
      input('predictions', predictionJson('r-1', 'intent', aliceTwin, T0 + 1000)),
      feedback('r-1', T0 + 3 * MINUTE, { correct: false }),
      // unmatched, in a category that is not configured
      input('predictions', predictionJson('u-1', 'misc', carol, T0 + 2000)),
      // duplicate prediction (other values, so its own values are checked too)
      input('predictions', predictionJson('s-1', 'loan', dave, T0 + 3000)),
      // invalid predictions that still carry attributes
      input('predictions', predictionJson('bad-1', 'loan', erin, T0 + 4000, { features: { amount: 'lots' } })),
      input('predictions', predictionJson('bad-2', 'intent', frank, T0 + 5000, { predictedLabel: undefined })),
      input('predictions', predictionJson('bad-3', 'misc', grace, T0 + 6000, { timestamp: -5 }), T0 + 6000),
      input('predictions', predictionJson(undefined, 'loan', heidi, T0 + 7000)),
      input('predictions', predictionJson('bad-5', 'loan', ivan, T0 + 8000, { scores: { approve: 'high' } })),
      // invalid feedback, no-prediction orphan, outside-window orphan (it also advances stream time past every window)
      feedback('s-1', T0 + 4 * MINUTE, {}),
      feedback('o-1', T0 + 5 * MINUTE, { actualLabel: 'approve' }),
      feedback('s-1', T0 + WINDOW.afterMs + 30 * MINUTE, { actualLabel: 'approve' }),
    ]);
    sendAndProcess([
      // late prediction and late feedback
      input('predictions', predictionJson('late-1', 'loan', judy, T0 + 10_000)),
      feedback('late-2', T0 + 20_000, { actualLabel: 'deny' }),
      // a fresh match in the unconfigured category, with alice's name again
      input('predictions', predictionJson('t-1', 'misc', { ...ken, name: alice.name }, T0 + 2 * WINDOW.afterMs)),
      feedback('t-1', T0 + 2 * WINDOW.afterMs + MINUTE, { correct: true }),
    ]);
    app.runtime.endOfInput();

    // After a restart the same key (from the key file) must give the same tokens.
    await app.close();
    app = await startEmbeddedApp(config, { logger: silentLogger() });
    sendAndProcess([
      input('predictions', predictionJson('after-restart', 'loan', { ...lena, name: alice.name, idNumber: alice.idNumber }, T0 + 3 * WINDOW.afterMs)),
      feedback('after-restart', T0 + 3 * WINDOW.afterMs + MINUTE, { actualLabel: 'deny' }),
      input('predictions', predictionJson('u-2', 'intent', mia, T0 + 3 * WINDOW.afterMs + 2000)),
      input('predictions', predictionJson('u-3', 'loan', nils, T0 + 3 * WINDOW.afterMs + 3000)),
    ]);
    app.runtime.endOfInput();
  });

  afterAll(async () => {
    await app?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const outputTopics = (): string[] => app.log.listTopics().map(([t]) => t).filter((t) => !INPUT_TOPICS.has(t));

  const readAll = (topic: string): DisplayRecord[] => {
    const out: DisplayRecord[] = [];
    const partitions = app.log.topic(topic)?.partitions ?? 0;
    for (let p = 0; p < partitions; p++) for (const r of app.log.read(topic, p, 0, Number.MAX_SAFE_INTEGER)) out.push(toDisplay(r, app.registry));
    return out;
  };

  it('went through every path', async () => {
    const access = directAccess(app.log, app.registry);
    const values = async (topic: string): Promise<Array<Record<string, unknown>>> => (await access.read(topic)).map((r) => r.value as Record<string, unknown>);
    expect((await values('samples')).map((s) => `${String(s.requestId)}#${String(s.revision)}`).sort()).toEqual(['after-restart#0', 's-1#0', 's-1#1', 't-1#0']);
    expect((await values('review')).map((r) => (r.prediction as { requestId: string }).requestId)).toEqual(['r-1']);
    expect((await values('unmatched')).map((u) => (u.prediction as { requestId: string }).requestId).sort()).toEqual(['r-1', 'u-1', 'u-2', 'u-3']);
    expect((await values('orphans')).map((o) => `${(o.feedback as { requestId: string }).requestId}:${String(o.reason)}`).sort()).toEqual([
      'o-1:no-prediction',
      's-1:outside-window',
    ]);
    expect((await values('late')).map((l) => `${String(l.requestId)}:${String(l.kind)}`).sort()).toEqual(['late-1:PREDICTION', 'late-2:FEEDBACK']);
    const deadLetters = await access.read('dead-letters');
    expect(deadLetters.map((d) => `${d.key}:${d.headers['sampleloop.dlq.reason.code']}`).sort()).toEqual([
      'bad-1:wrong-type',
      'bad-2:missing-field',
      'bad-3:invalid-timestamp',
      'bad-5:wrong-type',
      'null:missing-request-id',
      's-1:duplicate-prediction',
      's-1:invalid-feedback',
    ]);
    // Rejected predictions keep their attributes, protected, in a redacted payload.
    for (const d of deadLetters.filter((x) => x.headers['sampleloop.dlq.source.topic'] === 'predictions')) {
      expect(d.headers['sampleloop.dlq.payload.redacted'], String(d.key)).toBe('true');
      const payload = JSON.parse((d.value as { payload: string }).payload) as { attributes: Record<string, string> };
      expect(payload.attributes.name).toMatch(/^tok_[A-Za-z0-9_-]{22}$/);
      expect(payload.attributes.phone).toMatch(/^\*+\d{4}$/);
    }
  });

  it('no raw sensitive value (or unmasked prefix) in any key, value, header or decoded record of any output topic', () => {
    expect(forbidden.size).toBeGreaterThan(60);
    const topics = outputTopics();
    expect(topics).toEqual(expect.arrayContaining(['samples', 'unmatched', 'orphans', 'late', 'review', 'dead-letters']));
    const hits: Hit[] = [];
    let scanned = 0;
    for (const topic of topics) {
      const partitions = app.log.topic(topic)?.partitions ?? 0;
      for (let p = 0; p < partitions; p++) {
        for (const r of app.log.read(topic, p, 0, Number.MAX_SAFE_INTEGER)) {
          scanned++;
          const at = { topic, offset: r.offset };
          scanBytes(r.key, 'key', at, hits);
          scanBytes(r.value, 'value', at, hits);
          for (const [name, value] of Object.entries(r.headers)) scanBytes(Buffer.from(`${name}=${value}`), `header ${name}`, at, hits);
          scanBytes(Buffer.from(JSON.stringify(toDisplay(r, app.registry))), 'decoded', at, hits);
        }
      }
    }
    expect(scanned).toBe(20);
    expect(hits).toEqual([]);
  });

  it('the scan does find the raw values where they are allowed: the input topics', () => {
    const text = [...INPUT_TOPICS].flatMap((t) => readAll(t)).map((r) => JSON.stringify(r.value)).join('\n');
    const missing = [...forbidden.keys()].filter((v) => !text.includes(v));
    expect(missing).toEqual([]);
  });

  it('no raw sensitive value anywhere in the database outside the input topics (state stores, offsets, schemas)', () => {
    const db = app.log.db;
    const inputPrefixes = [...INPUT_TOPICS].flatMap((t) => [0, 1, 2, 3].map((p) => partitionPrefix(KEY_RECORD, t, p)));
    const hits: Hit[] = [];
    let entries = 0;
    let from = Buffer.from([0]);
    const end = prefixEnd(Buffer.from([0xff]));
    for (;;) {
      const rows = db.range(from, end, 5000);
      for (const [k, v] of rows) {
        if (inputPrefixes.some((prefix) => k.subarray(0, prefix.length).equals(prefix))) continue;
        entries++;
        scanBytes(k, 'db key', { topic: '(db)', offset: entries }, hits);
        scanBytes(v, `db value of ${k.subarray(0, 40).toString('latin1')}`, { topic: '(db)', offset: entries }, hits);
      }
      if (rows.length < 5000) break;
      from = Buffer.concat([rows[rows.length - 1]![0], Buffer.from([0])]);
    }
    expect(entries).toBeGreaterThan(20);
    expect(hits).toEqual([]);
  });

  it('protects with the configured action; equal values give equal tokens across records, categories, topics and restarts', async () => {
    const access = directAccess(app.log, app.registry);
    const samples = new Map((await access.read('samples')).map((r) => [`${r.key}#${String((r.value as { revision: number }).revision)}`, r.value as { attributes: Record<string, string> }]));
    const s1 = samples.get('s-1#0')!.attributes;
    expect(s1).toEqual({
      name: expectedToken('name', alice.name),
      phone: masked(alice.phone, 4),
      idNumber: expectedToken('idNumber', alice.idNumber),
      iban: expectedToken('iban', alice.iban),
      email: masked(alice.email, 3),
      country: 'DE',
      channel: 'web',
    });
    expect(samples.get('s-1#1')!.attributes).toEqual(s1);
    expect(samples.get('t-1#0')!.attributes.name).toBe(s1.name);
    const afterRestart = samples.get('after-restart#0')!.attributes;
    expect(afterRestart.name).toBe(s1.name);
    expect(afterRestart.idNumber).toBe(s1.idNumber);
    expect(afterRestart.phone).not.toBe(s1.phone);

    const review = (await access.read('review'))[0]!.value as { prediction: { attributes: Record<string, string> } };
    expect(review.prediction.attributes.name).toBe(s1.name);
    expect(review.prediction.attributes.idNumber).toBe(expectedToken('idNumber', bob.idNumber));
    expect(review.prediction.attributes.phone).toBe(masked(bob.phone, 4));

    // Different values give different tokens.
    const names = people.map((p) => expectedToken('name', p.name));
    expect(new Set(names).size).toBe(people.length);
    const late = (await access.read('late')).find((r) => r.key === 'late-1')!.value as { prediction: { attributes: Record<string, string> } };
    expect(late.prediction.attributes.name).toBe(expectedToken('name', judy.name));
    expect(late.prediction.attributes.iban).toBe(expectedToken('iban', judy.iban));
  });
});
