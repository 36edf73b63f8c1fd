/**
 * kill -9 test of the embedded engine's exactly-once claim: a worker process (test/fixtures/crash-worker.mjs,
 * running the compiled engine) is SIGKILLed at seeded random moments while it processes a large input,
 * restarted on the same data dir, and finally run to the end. Every output topic must then hold exactly
 * what a clean, uninterrupted run of the same input produces: nothing lost, nothing duplicated.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from './helpers/dist.js';
import { parseConfig, type ConfigInput } from '../config/config.js';
import { directAccess, type DisplayRecord } from '../access/embedded.js';
import { logDirOf } from '../app/embedded.js';
import { EmbeddedLog } from '../engine/embedded/log.js';
import { rocksRegistryStorage } from '../schemas/registry-storage.js';
import type { OutputRecord } from '../engine/record.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import type { RefInput } from './reference/join-model.js';
import { generateTraffic, mulberry32 } from './reference/traffic.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const WORKER = join(ROOT, 'test', 'fixtures', 'crash-worker.mjs');

const REQUESTS = 20_000;
const KILLS = 16;
const SEED = 20_240_611;
const PRIVACY_KEY = '5f0c1b2a3e4d69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0';
const TOPICS = ['predictions', 'feedback'] as const;
const OUTPUT_TOPICS = ['samples', 'unmatched', 'orphans', 'late', 'review', 'dead-letters'] as const;

/**
 * Short windows so that windows close (unmatched, no-prediction orphans, late records) from early in
 * the input on, where the kills land. idleAdvance off: stream time must depend on the input only,
 * not on how long each worker lived.
 */
const JOIN_WINDOW = { beforeMs: 60_000, afterMs: 2 * 3600_000, graceMs: 10 * 60_000 };
const ENGINE_CONFIG: ConfigInput = {
  embedded: { partitions: 2, commitIntervalMs: 5 },
  join: { ...JOIN_WINDOW, idleAdvance: false },
  categories: { intent: { classes: ['billing', 'support', 'sales', 'cancel'] } },
  log: { level: 'silent' },
};

// ---------------------------------------------------------------------------------------------
// dist/ must be current: the worker runs the compiled engine.

// ---------------------------------------------------------------------------------------------
// Input.

function jsonRecord(topic: string, requestId: string | null, value: string, timestamp: number): OutputRecord {
  return { topic, key: requestId === null ? null : Buffer.from(requestId), value: Buffer.from(value), timestamp, headers: {} };
}

/** Generated traffic in arrival order, plus a few invalid records (dead letters) spread through it. */
function buildInput(): OutputRecord[] {
  const traffic: RefInput[] = generateTraffic({
    seed: SEED,
    requests: REQUESTS,
    joinWindow: JOIN_WINDOW,
    feedbackDelayMs: { min: 100, max: 90 * 60_000 },
  });
  const records: OutputRecord[] = [];
  traffic.forEach((input, i) => {
    if (input.kind === 'prediction') {
      const p = input.value;
      records.push(jsonRecord('predictions', p.requestId, JSON.stringify({ ...p, requestTimestamp: p.timestamp }), p.timestamp));
    } else {
      const f = input.value;
      records.push(jsonRecord('feedback', f.requestId, JSON.stringify(f), f.timestamp));
    }
    if (i % 997 === 500) {
      const ts = input.value.timestamp;
      records.push(jsonRecord('feedback', `bad-${i}`, JSON.stringify({ requestId: `bad-${i}`, timestamp: ts }), ts));
      records.push(jsonRecord('predictions', null, `{"requestId": "broken-${i}", "timestamp": `, ts));
    }
  });
  return records;
}

function writeInput(dataDir: string, records: readonly OutputRecord[]): Promise<void> {
  return withLog(dataDir, (log) => {
    for (const topic of TOPICS) log.ensureTopic(topic, { partitions: 2 });
    for (let i = 0; i < records.length; i += 5000) log.append(records.slice(i, i + 5000));
  });
}

async function withLog<T>(dataDir: string, fn: (log: EmbeddedLog) => T | Promise<T>): Promise<T> {
  const log = await EmbeddedLog.open(logDirOf(dataDir));
  try {
    return await fn(log);
  } finally {
    await log.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Worker processes.

interface Worker {
  child: ChildProcess;
  events: Array<{ event: string; processed?: number }>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitFor(event: string, timeoutMs: number): Promise<void>;
  stderr(): string;
}

/** Every worker started, so none outlives a failed test. */
const spawned: ChildProcess[] = [];

function startWorker(dataDir: string, mode: 'loop' | 'finish'): Worker {
  const child = spawn(process.execPath, [WORKER, dataDir, mode, JSON.stringify(ENGINE_CONFIG)], {
    cwd: ROOT,
    env: { ...process.env, SAMPLELOOP_PRIVACY_KEY: PRIVACY_KEY },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  spawned.push(child);
  const events: Worker['events'] = [];
  const waiters: Array<() => void> = [];
  let err = '';
  child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      events.push(JSON.parse(line) as Worker['events'][number]);
    } catch {
      events.push({ event: `unparsed: ${line}` });
    }
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
      for (const w of waiters.splice(0)) w();
    }),
  );
  const waitFor = async (event: string, timeoutMs: number): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!events.some((e) => e.event === event)) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`worker exited before "${event}": ${err}`);
      if (Date.now() > deadline) throw new Error(`worker did not report "${event}" within ${timeoutMs} ms: ${err}`);
      await Promise.race([new Promise<void>((resolve) => waiters.push(resolve)), sleep(100)]);
    }
  };
  return { child, events, exited, waitFor, stderr: () => err };
}

async function runToCompletion(dataDir: string): Promise<number> {
  const worker = startWorker(dataDir, 'finish');
  const { code } = await worker.exited;
  expect(code, worker.stderr()).toBe(0);
  const finished = worker.events.find((e) => e.event === 'finished');
  expect(finished).toBeDefined();
  return finished?.processed ?? -1;
}

// ---------------------------------------------------------------------------------------------
// Results.

interface Progress {
  committed: number;
  end: number;
  samples: number;
}

const CONSUMER_GROUP = 'sampleloop.samples';

function progressOf(dataDir: string): Promise<Progress> {
  return withLog(dataDir, (log) => {
    let committed = 0;
    let end = 0;
    for (const topic of TOPICS) {
      for (let p = 0; p < 2; p++) {
        committed += log.committedOffset(CONSUMER_GROUP, topic, p) ?? 0;
        end += log.endOffset(topic, p);
      }
    }
    let samples = 0;
    if (log.topic('samples')) for (let p = 0; p < 2; p++) samples += log.endOffset('samples', p);
    return { committed, end, samples };
  });
}

type Outputs = Record<(typeof OUTPUT_TOPICS)[number], string[]>;

/** One comparable line per output record (wall-clock fields such as failedAt left out), sorted. */
function describeRecord(topic: string, r: DisplayRecord): string {
  const v = r.value as Record<string, unknown>;
  switch (topic) {
    case 'samples':
      return `${String(v.requestId)}|${String(v.revision)}|${String(v.label)}|${String(v.labelSource)}`;
    case 'orphans':
      return `${r.key}|${String(v.reason)}`;
    case 'late':
      return `${r.key}|${String(v.kind)}`;
    case 'dead-letters':
      return `${r.key}|${r.headers['sampleloop.dlq.reason.code']}|${r.headers['sampleloop.dlq.source.topic']}/${r.headers['sampleloop.dlq.source.partition']}@${r.headers['sampleloop.dlq.source.offset']}`;
    default:
      return `${r.key}`;
  }
}

function readOutputs(dataDir: string, topics: ReadonlyArray<(typeof OUTPUT_TOPICS)[number]> = OUTPUT_TOPICS): Promise<Outputs> {
  return withLog(dataDir, async (log) => {
    const access = directAccess(log, new LocalSchemaRegistry(rocksRegistryStorage(log.db)));
    const out = {} as Outputs;
    for (const topic of topics) out[topic] = log.topic(topic) ? (await access.read(topic)).map((r) => describeRecord(topic, r)).sort() : [];
    return out;
  });
}

// ---------------------------------------------------------------------------------------------

interface Kill extends Progress {
  delayMs: number;
  /** The worker had already run out of input when it was killed. */
  wasIdle: boolean;
  /** The samples topic as it survived this kill. */
  samplesAtKill: string[];
}

/**
 * Starts a worker, lets it process for a seeded random 50–400 ms, SIGKILLs it, and records what survived.
 * `afterFirstCommit` starts the delay only once the worker made its first step durable, so even a slow
 * machine gets past offset 0 on the first cycle.
 */
async function killCycle(dataDir: string, delayMs: number, afterFirstCommit: boolean): Promise<Kill> {
  const worker = startWorker(dataDir, 'loop');
  await worker.waitFor(afterFirstCommit ? 'committed' : 'ready', 30_000);
  await sleep(delayMs);
  const wasIdle = worker.events.some((e) => e.event === 'idle');
  worker.child.kill('SIGKILL');
  const { signal } = await worker.exited;
  expect(signal, worker.stderr()).toBe('SIGKILL');
  const progress = await progressOf(dataDir);
  const samplesAtKill = (await readOutputs(dataDir, ['samples'])).samples;
  return { ...progress, delayMs, wasIdle, samplesAtKill };
}

function requestRevision(sample: string): string {
  return sample.split('|').slice(0, 2).join('|');
}

describe('kill -9 during processing (embedded engine, exactly-once)', () => {
  const base = mkdtempSync(join(tmpdir(), 'sampleloop-crash-'));
  const cleanDir = join(base, 'clean');
  const crashDir = join(base, 'crash');
  let inputCount = 0;

  beforeAll(async () => {
    parseConfig(ENGINE_CONFIG); // fails fast on a config the worker would reject
    await ensureBuilt();
    const input = buildInput();
    inputCount = input.length;
    await writeInput(cleanDir, input);
    await writeInput(crashDir, input);
  });

  afterAll(() => {
    for (const child of spawned) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(base, { recursive: true, force: true });
  });

  it('produces exactly the outputs of a clean run after repeated SIGKILLs and restarts', async () => {
    // The clean run has its own data dir, so it runs while the crash loop does.
    const cleanRun = runToCompletion(cleanDir);
    cleanRun.catch(() => undefined); // awaited below; this only keeps an early failure from being reported twice

    const rng = mulberry32(SEED);
    const kills: Kill[] = [];
    for (let i = 0; i < KILLS; i++) kills.push(await killCycle(crashDir, 50 + Math.floor(rng() * 351), i === 0));
    const processedLast = await runToCompletion(crashDir);
    const actual = await readOutputs(crashDir);

    expect(await cleanRun).toBe(inputCount);
    const expected = await readOutputs(cleanDir);
    expect(expected.samples.length).toBeGreaterThan(REQUESTS / 2);
    for (const topic of OUTPUT_TOPICS) expect(expected[topic].length, `clean run: ${topic}`).toBeGreaterThan(0);

    // The kills hit workers in the middle of the input; restarts resumed from the committed offsets.
    const summary = JSON.stringify(kills.map(({ samplesAtKill, ...k }) => ({ ...k, samples: samplesAtKill.length })));
    const midway = kills.filter((k) => !k.wasIdle && k.committed > 0 && k.committed < k.end);
    expect(midway.length, summary).toBeGreaterThanOrEqual(Math.ceil(KILLS * 0.75));
    const advanced = kills.filter((k, i) => k.committed > (kills[i - 1]?.committed ?? 0));
    expect(advanced.length, summary).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < kills.length; i++) expect(kills[i]!.committed, summary).toBeGreaterThanOrEqual(kills[i - 1]!.committed);
    expect(processedLast).toBe(inputCount - kills[kills.length - 1]!.committed);

    // What survived each kill was already correct: no duplicate, nothing the clean run did not produce.
    const expectedSamples = new Set(expected.samples);
    for (const k of kills) {
      expect(new Set(k.samplesAtKill.map(requestRevision)).size).toBe(k.samplesAtKill.length);
      expect(k.samplesAtKill.filter((s) => !expectedSamples.has(s))).toEqual([]);
    }

    // Nothing lost, nothing duplicated: each (requestId, revision) exactly once, with the clean run's label.
    expect(new Set(actual.samples.map(requestRevision)).size).toBe(actual.samples.length);
    expect(actual.samples.length).toBe(expected.samples.length);
    expect(actual.samples).toEqual(expected.samples);
    for (const topic of ['unmatched', 'orphans', 'late', 'review', 'dead-letters'] as const) {
      expect(actual[topic].length, topic).toBe(expected[topic].length);
      expect(actual[topic], topic).toEqual(expected[topic]);
    }
  }, 150_000);
});
