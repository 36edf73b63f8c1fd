/**
 * Dead letters are logged at warn (reason code, source topic, partition, offset; never the payload),
 * rate-limited per reason code with a summary line for the rest (engine/dead-letter-log.ts).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../config/config.js';
import { ingressAccess, startEmbeddedApp } from '../app/embedded.js';
import { DeadLetterLog, type DeadLetterLogEntry } from '../engine/dead-letter-log.js';

interface Line {
  level: number;
  msg: string;
  [field: string]: unknown;
}

function capturingLogger(): { logger: pino.Logger; lines: Line[]; text: () => string } {
  const raw: string[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void raw.push(s) });
  return {
    logger,
    get lines() {
      return raw.map((s) => JSON.parse(s) as Line);
    },
    text: () => raw.join(''),
  };
}

const entry = (reasonCode: string, offset: number): DeadLetterLogEntry => ({ reasonCode, reason: `because ${reasonCode}`, topic: 'predictions', partition: 0, offset, stage: 'decode-predictions', task: 'samples-0' });

describe('dead-letter log', () => {
  const base = mkdtempSync(join(tmpdir(), 'sampleloop-dl-log-'));
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it('logs the first N per reason and interval at warn, then one summary line per reason', () => {
    const capture = capturingLogger();
    let now = 1_000;
    const log = new DeadLetterLog(capture.logger, { perReason: 2, intervalMs: 10_000, now: () => now });
    for (let i = 0; i < 5; i++) log.record(entry('undecodable', i));
    log.record(entry('wrong-type', 9));
    expect(capture.lines.map((l) => [l.level, l.reasonCode, l.offset])).toEqual([
      [40, 'undecodable', 0],
      [40, 'undecodable', 1],
      [40, 'wrong-type', 9],
    ]);
    expect(capture.lines[0]).toMatchObject({ msg: 'dead letter: record sent to the dead-letter topic', reason: 'because undecodable', topic: 'predictions', partition: 0, stage: 'decode-predictions' });
    now += 10_000;
    log.record(entry('undecodable', 5));
    const after = capture.lines.slice(3);
    expect(after.map((l) => [l.level, l.reasonCode, l.count ?? l.offset])).toEqual([
      [40, 'undecodable', 3],
      [40, 'undecodable', 5],
    ]);
    expect(after[0]!.msg).toBe('dead letters: 3 more with reason undecodable not logged one by one (rate limit: 2 per 10 s)');
  });

  it('the engine logs each dead letter with its source and never the payload', async () => {
    const capture = capturingLogger();
    const dataDir = join(base, 'engine');
    const keyFile = join(base, 'key');
    writeFileSync(keyFile, 'ab'.repeat(32));
    const app = await startEmbeddedApp(parseConfig({ dataDir, privacy: { keyEnv: 'SAMPLELOOP_DL_LOG_TEST_UNSET', keyFile }, log: { level: 'info' } }), { logger: capture.logger });
    try {
      await ingressAccess(app).produce('predictions', ['call +44 7700 900555 about ID 987-65-4321', '{"requestId": "x-1", "attributes": {"name": "Secret Person"}}'].join('\n'));
      app.runtime.runUntilIdle();
    } finally {
      await app.close();
    }
    const deadLetters = capture.lines.filter((l) => l.msg.startsWith('dead letter'));
    expect(deadLetters.map((l) => [l.level, l.reasonCode, l.topic, l.partition, l.offset])).toEqual([
      [40, 'undecodable', 'predictions', 0, 0],
      [40, 'missing-field', 'predictions', 0, 1],
    ]);
    for (const raw of ['900555', '987-65-4321', 'Secret Person']) expect(capture.text()).not.toContain(raw);
  });
});
