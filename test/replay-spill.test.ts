/**
 * Replay holds the join state in memory up to `replay.stateMemoryEntries` entries and writes it to the
 * scratch database ("spills") beyond: the outputs must not depend on when, or whether, it spilled —
 * at every commit (budget 0), now and then (a small budget), or never (the default).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../config/config.js';
import { runReplay, type ReplaySummary } from '../replay/topology.js';
import { HARNESS_PRIVACY_KEY } from './helpers/engine-harness.js';
import { generateTraffic } from './reference/traffic.js';

const REQUESTS = 12_000;
const COMMIT_RECORDS = 5_000;
const SPILL_MESSAGE = 'replay: join state written to the scratch database';
const OUTPUT_FILES = ['samples', 'unmatched', 'orphans', 'late', 'review', 'dead-letters'];

interface SpillRun {
  summary: ReplaySummary;
  files: Record<string, string>;
  spills: number;
}

let root: string;
let keyFile: string;
let archive: { gateway: string; business: string };

function jsonLines(values: ReadonlyArray<{ timestamp: number }>): string {
  // Event-time order (stable), so the replay merges the two files instead of sorting them on disk.
  return [...values]
    .sort((a, b) => a.timestamp - b.timestamp)
    .map((v) => JSON.stringify(v))
    .join('\n')
    .concat('\n');
}

function writeArchive(): { gateway: string; business: string } {
  const traffic = generateTraffic({ seed: 20260106, requests: REQUESTS });
  const predictions = [];
  const feedback = [];
  for (const input of traffic) {
    if (input.kind === 'prediction') predictions.push({ ...input.value, requestTimestamp: input.value.timestamp - 3 });
    else {
      const { actualLabel, correct, ...rest } = input.value;
      feedback.push({ ...rest, ...(actualLabel === null ? {} : { actualLabel }), ...(correct === null ? {} : { correct }) });
    }
  }
  const gateway = join(root, 'gateway.jsonl');
  const business = join(root, 'business.jsonl');
  writeFileSync(gateway, jsonLines(predictions));
  writeFileSync(business, jsonLines(feedback));
  return { gateway, business };
}

/** The output files as written; dead letters without `failedAt` (wall clock). */
function readOutputs(out: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const name of OUTPUT_FILES) {
    const text = readFileSync(name === 'samples' ? out : out.replace('.jsonl', `.${name}.jsonl`), 'utf8');
    files[name] = name === 'dead-letters' ? text.replace(/"failedAt":\d+/g, '"failedAt":0') : text;
  }
  return files;
}

async function replayWithBudget(name: string, stateMemoryEntries?: number): Promise<SpillRun> {
  const dir = join(root, name);
  mkdirSync(dir);
  const out = join(dir, 'samples.jsonl');
  let spills = 0;
  const logger = pino({ level: 'debug' }, { write: (line: string) => void (line.includes(SPILL_MESSAGE) && spills++) });
  const config = parseConfig({
    dataDir: join(dir, 'data'),
    log: { level: 'silent' },
    privacy: { keyFile, keyEnv: 'SAMPLELOOP_REPLAY_SPILL_TEST_UNUSED_KEY' },
    embedded: { partitions: 2 },
    ...(stateMemoryEntries === undefined ? {} : { replay: { stateMemoryEntries } }),
  });
  const summary = await runReplay({ config, gateway: [archive.gateway], business: [archive.business], out: `file:${out}`, logger });
  return { summary, files: readOutputs(out), spills };
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'sampleloop-replay-spill-'));
  keyFile = join(root, 'privacy.key');
  writeFileSync(keyFile, `${HARNESS_PRIVACY_KEY.toString('hex')}\n`);
  archive = writeArchive();
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('replay.stateMemoryEntries', () => {
  it('defaults to 200,000 and takes only a whole number >= 0', () => {
    expect(parseConfig({}).replay.stateMemoryEntries).toBe(200_000);
    expect(parseConfig({ replay: { stateMemoryEntries: 0 } }).replay.stateMemoryEntries).toBe(0);
    for (const bad of [-1, 1.5, '1000']) {
      expect(() => parseConfig({ replay: { stateMemoryEntries: bad } })).toThrow(/replay\.stateMemoryEntries/);
    }
  });
});

describe('replay join state: in memory up to a budget, spilled beyond', () => {
  let everyCommit: SpillRun;

  beforeAll(async () => {
    everyCommit = await replayWithBudget('budget-0', 0);
  }, 120_000);

  it('with a budget of 0 spills at every commit, and the run covers every kind of output', () => {
    const { summary } = everyCommit;
    const records = summary.records.gateway + summary.records.business;
    expect(summary.order.mode).toBe('merge');
    expect(everyCommit.spills).toBe(Math.floor(records / COMMIT_RECORDS));
    expect(summary.written.samples).toBeGreaterThan(REQUESTS / 2);
    expect(summary.samplesEmitted).toBeGreaterThan(summary.written.samples);
    for (const output of ['unmatched', 'orphans', 'deadLetters'] as const) expect(summary.written[output]).toBeGreaterThan(0);
  });

  it('never spills with the default budget, with byte-identical outputs', async () => {
    const inMemory = await replayWithBudget('budget-default');
    expect(inMemory.spills).toBe(0);
    expect(inMemory.files).toEqual(everyCommit.files);
    expect(inMemory.summary.written).toEqual(everyCommit.summary.written);
  });

  it('spills only now and then with a small budget, with byte-identical outputs', async () => {
    // About 5,400 entries are held at the first commit, 5,900 at the second: the store starts empty, spills, then reads RocksDB.
    const sometimes = await replayWithBudget('budget-small', 5_500);
    expect(sometimes.spills).toBeGreaterThan(0);
    expect(sometimes.spills).toBeLessThan(everyCommit.spills);
    expect(sometimes.files).toEqual(everyCommit.files);
  });
});
