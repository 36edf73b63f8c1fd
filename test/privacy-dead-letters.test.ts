/**
 * Rejected records that carry sensitive attributes: no raw value may reach the dead-letter topic
 * (value bytes and headers). Bytes that cannot be parsed are kept sealed (AES-256-GCM under a key
 * derived from the privacy key) and can be opened by whoever holds the key.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../config/config.js';
import { startEmbeddedApp, type EmbeddedApp } from '../app/embedded.js';
import { silentLogger } from '../engine/logger.js';
import { decodeFramed } from '../schemas/codec.js';

const NAME = 'Ingrid Bergström';
const PHONE = '+44 7700 900123';
const ID_NUMBER = 912345678;

interface DeadLetterView {
  reasonCode: string;
  redacted: string;
  encoding: string;
  payload: Buffer;
  bytes: Buffer;
}

const dirs: string[] = [];
let app: EmbeddedApp | undefined;

afterEach(async () => {
  await app?.close();
  app = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Sends one raw prediction value through the engine; returns the dead letters with all their bytes. */
async function deadLettersFor(value: string, maxRecordBytes = 1024 * 1024): Promise<DeadLetterView[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sampleloop-privacy-bug-'));
  dirs.push(dataDir);
  const keyFile = join(dataDir, 'k.key');
  writeFileSync(keyFile, '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff');
  const config = parseConfig({ dataDir, input: { maxRecordBytes }, privacy: { keyEnv: 'SAMPLELOOP_PRIVACY_BUG_UNSET', keyFile }, log: { level: 'silent' } });
  app = await startEmbeddedApp(config, { logger: silentLogger() });
  app.log.append([{ topic: 'predictions', key: Buffer.from('r-1'), value: Buffer.from(value), timestamp: 1_750_000_000_000, headers: {} }]);
  app.runtime.runUntilIdle();
  return app.log.read('dead-letters', 0, 0, 100).map((r) => ({
    reasonCode: r.headers['sampleloop.dlq.reason.code'] ?? '',
    redacted: r.headers['sampleloop.dlq.payload.redacted'] ?? '',
    encoding: r.headers['sampleloop.dlq.payload.encoding'] ?? '',
    payload: (decodeFramed(r.value as Buffer, (id) => app?.registry.cached(id)).value as { payload: Buffer }).payload,
    bytes: Buffer.concat([r.value ?? Buffer.alloc(0), ...Object.entries(r.headers).map(([k, v]) => Buffer.from(`${k}=${v}`))]),
  }));
}

function leaked(letters: DeadLetterView[], values: string[]): string[] {
  return values.filter((v) => letters.some((l) => l.bytes.includes(Buffer.from(v))));
}

const attributes = `"attributes": {"name": "${NAME}", "phone": "${PHONE}"}`;
const prediction = (extra: string): string =>
  `{"requestId": "r-1", "category": "loan", "features": {"x": 1}, ${attributes}, "predictedLabel": "a", "scores": {"a": 1}, "modelVersion": "1", "requestTimestamp": 1750000000000, "timestamp": 1750000000000${extra}}`;

describe('dead letters of rejected records never carry sensitive attributes in clear', () => {
  // processors/decode.ts reject(): decodeRecord returns no `partial` for unparsable JSON, so no redactedPayload
  // is made and engine/task.ts sendDeadLetter stores the original bytes (payloadRedacted=false). The reason text
  // also quotes V8's JSON.parse message, which contains a snippet of the input.
  it('malformed JSON carrying attributes: no raw name or phone in the dead letter', async () => {
    const letters = await deadLettersFor(prediction(',')); // trailing comma: not valid JSON
    expect(letters.map((l) => `${l.reasonCode}/${l.redacted}`)).toEqual(['undecodable/true']);
    expect(leaked(letters, [NAME, PHONE, PHONE.slice(0, -4)])).toEqual([]);
  });

  // schemas/codec.ts decodeRecord(): `oversize` is rejected before parsing, without `partial`: same raw payload.
  it('oversized record carrying attributes: no raw name or phone in the dead letter', async () => {
    const letters = await deadLettersFor(prediction(`, "padding": "${'x'.repeat(600)}"`), 512);
    expect(letters.map((l) => `${l.reasonCode}/${l.redacted}`)).toEqual(['oversize/true']);
    expect(leaked(letters, [NAME, PHONE, PHONE.slice(0, -4)])).toEqual([]);
  });

  // schemas/validate.ts stringMap() → describe(): the reason quotes the offending value ("got the number
  // 912345678"), and reasons go to the dead letter's `reason` field and `sampleloop.dlq.reason` header.
  // The redacted payload itself is fine (decode.ts redact() stringifies and tokenizes it).
  it('attribute with a non-string value: the reason does not quote the raw idNumber', async () => {
    const letters = await deadLettersFor(prediction('').replace(`"phone": "${PHONE}"`, `"phone": "${PHONE}", "idNumber": ${ID_NUMBER}`));
    expect(letters.map((l) => `${l.reasonCode}/${l.redacted}`)).toEqual(['wrong-type/true']);
    expect(leaked(letters, [NAME, PHONE, String(ID_NUMBER)])).toEqual([]);
  });
});

describe('sealed dead-letter payloads', () => {
  it('open with the privacy key to exactly the original bytes', async () => {
    const original = prediction(',');
    const [letter] = await deadLettersFor(original);
    expect(letter?.encoding).toBe('sealed');
    expect(app?.privacy.openSealed(letter?.payload as Buffer).toString('utf8')).toBe(original);
  });
});
