/**
 * Replay's ordering paths give the same outputs: the k-way merge of time-ordered files, the merge
 * through its reorder buffer, the fallback to the on-disk sort when a file is out of order beyond the
 * buffer, the forced on-disk sort, and reading on the main thread or in a worker (either transfer).
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type SampleloopConfig } from '../config/config.js';
import { directAccess } from '../access/embedded.js';
import { openEmbeddedLog } from '../app/embedded.js';
import { rocksRegistryStorage } from '../schemas/registry-storage.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import { runReplay, type ReplayRequest, type ReplaySummary } from '../replay/topology.js';
import { HARNESS_PRIVACY_KEY } from './helpers/engine-harness.js';

const T0 = Date.UTC(2026, 0, 5, 9, 0, 0);
const SECOND = 1000;
const PREDICTIONS = 300;
const GATEWAY_FILES = 3;
const SIDE_FILES = ['unmatched', 'orphans', 'late', 'review'];

let root: string;
let keyFile: string;

function dir(name: string): string {
  const path = join(root, name);
  mkdirSync(path, { recursive: true });
  return path;
}

function config(dataDir: string): SampleloopConfig {
  return parseConfig({
    dataDir,
    log: { level: 'silent' },
    privacy: { keyFile, keyEnv: 'SAMPLELOOP_REPLAY_TEST_UNUSED_KEY' },
    // Windows close during the run, so unmatched predictions and orphans come out in the middle of it.
    join: { beforeMs: 5 * SECOND, afterMs: 60 * SECOND, graceMs: 10 * SECOND },
    embedded: { partitions: 3 },
  });
}

function prediction(i: number): Record<string, unknown> {
  const t = T0 + i * 2 * SECOND;
  return {
    requestId: `req-${String(i % 290).padStart(4, '0')}`, // the last 10 are duplicates of early requests
    category: i % 4 === 0 ? 'intent' : 'fraud',
    features: { amount: 10 + i, hour: i % 24 },
    attributes: { name: `Customer ${i}`, channel: 'web' },
    predictedLabel: i % 3 === 0 ? 'fraud' : 'legit',
    scores: { fraud: 0.3, legit: 0.7 },
    modelVersion: '1.0.0',
    requestTimestamp: t - 5,
    timestamp: t,
  };
}

/** Feedback: most within the window, some corrected twice, some too late for the window, some for no prediction. */
function feedback(): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (let i = 0; i < PREDICTIONS; i++) {
    const p = prediction(i) as { requestId: string; timestamp: number; predictedLabel: string };
    if (i % 7 === 0) continue;
    const delay = i % 11 === 0 ? 90 * SECOND : ((i * 7919) % 50) * SECOND;
    out.push({ requestId: p.requestId, timestamp: p.timestamp + delay, actualLabel: i % 5 === 0 ? 'fraud' : p.predictedLabel });
    if (i % 13 === 0) out.push({ requestId: p.requestId, timestamp: p.timestamp + delay + 3 * SECOND, correct: i % 2 === 0 });
  }
  for (let k = 0; k < 5; k++) out.push({ requestId: `ghost-${k}`, timestamp: T0 + k * 100 * SECOND, correct: true });
  return out.sort((a, b) => (a.timestamp as number) - (b.timestamp as number));
}

function lines(values: readonly object[]): string {
  return values.map((v) => JSON.stringify(v)).join('\n') + '\n';
}

/** Gateway files: prediction i goes to file i % 3 (overlapping time ranges), each file transformed by `arrange`. */
function writeArchive(name: string, arrange: (records: Array<Record<string, unknown>>, file: number) => Array<Record<string, unknown>>): { gateway: string[]; business: string[] } {
  const d = dir(name);
  const gateway: string[] = [];
  for (let f = 0; f < GATEWAY_FILES; f++) {
    const records = Array.from({ length: PREDICTIONS }, (_, i) => i)
      .filter((i) => i % GATEWAY_FILES === f)
      .map(prediction);
    const path = join(d, `gateway-${f}.jsonl.gz`);
    writeFileSync(path, gzipSync(lines(arrange(records, f))));
    gateway.push(path);
  }
  const fb = feedback();
  const half = Math.floor(fb.length / 2);
  const business = [join(d, 'business-0.jsonl'), join(d, 'business-1.jsonl')];
  writeFileSync(business[0] as string, lines(arrange(fb.filter((_, i) => i % 2 === 0), 10)));
  writeFileSync(business[1] as string, lines(arrange(fb.filter((_, i) => i % 2 === 1), 11)));
  expect(half).toBeGreaterThan(0);
  return { gateway, business };
}

/** Swaps neighbours: out of order by at most 2 records. */
function jitter(records: Array<Record<string, unknown>>): Array<Record<string, unknown>> {
  const out = [...records];
  for (let i = 0; i + 1 < out.length; i += 3) [out[i], out[i + 1]] = [out[i + 1] as Record<string, unknown>, out[i] as Record<string, unknown>];
  return out;
}

async function replayTo(name: string, archive: { gateway: string[]; business: string[] }, extra: Partial<ReplayRequest> = {}): Promise<{ summary: ReplaySummary; files: Record<string, string> }> {
  const out = join(dir(name), 'samples.jsonl');
  const summary = await runReplay({ config: config(dir('data')), gateway: archive.gateway, business: archive.business, out: `file:${out}`, ...extra });
  const files: Record<string, string> = { samples: readFileSync(out, 'utf8') };
  for (const side of SIDE_FILES) files[side] = readFileSync(out.replace('.jsonl', `.${side}.jsonl`), 'utf8');
  return { summary, files };
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'sampleloop-replay-order-'));
  keyFile = join(root, 'privacy.key');
  writeFileSync(keyFile, `${HARNESS_PRIVACY_KEY.toString('hex')}\n`);
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('replay order: merge, reorder buffer, on-disk sort', () => {
  let reference: { summary: ReplaySummary; files: Record<string, string> };
  let ordered: { gateway: string[]; business: string[] };

  beforeAll(async () => {
    ordered = writeArchive('ordered', (r) => r);
    reference = await replayTo('reference', ordered, { order: 'sort' });
  });

  it('the reference run covers samples, corrections, duplicates, unmatched and orphans', () => {
    const { summary } = reference;
    expect(summary.order.mode).toBe('sort');
    expect(summary.written.samples).toBeGreaterThan(200);
    expect(summary.samplesEmitted).toBeGreaterThan(summary.written.samples);
    expect(summary.written.unmatched).toBeGreaterThan(10);
    expect(summary.written.orphans).toBeGreaterThan(10);
  });

  it('merges time-ordered files on the fly with the same outputs as the on-disk sort', async () => {
    const merged = await replayTo('merged', ordered);
    expect(merged.summary.order.mode).toBe('merge');
    expect(merged.files).toEqual(reference.files);
    expect(merged.summary.written).toEqual(reference.summary.written);
  });

  it('puts nearly ordered files in order through the reorder buffer', async () => {
    const jittered = writeArchive('jittered', jitter);
    const result = await replayTo('jittered-out', jittered, { reorderWindow: 4 });
    expect(result.summary.order.mode).toBe('merge');
    expect(result.files).toEqual(reference.files);
  });

  it('falls back to the on-disk sort when a file is out of order beyond the buffer, with the same outputs', async () => {
    const reversed = writeArchive('reversed', (r, f) => (f === 1 ? [...r].reverse() : r));
    const result = await replayTo('reversed-out', reversed, { reorderWindow: 4 });
    expect(result.summary.order.mode).toBe('sort');
    expect(result.summary.order.reason).toContain('gateway-1.jsonl.gz');
    expect(result.files).toEqual(reference.files);
    expect(result.summary.rejected).toBe(0);
    // Nothing of the abandoned merge is left behind.
    expect(readdirSync(join(root, 'reversed-out')).sort()).toEqual(['samples.dead-letters.jsonl', 'samples.jsonl', ...SIDE_FILES.map((s) => `samples.${s}.jsonl`), 'samples.rejects.jsonl'].sort());
  });

  it('gives the same outputs reading on the main thread and in a worker, with either transfer', async () => {
    const inline = await replayTo('inline', ordered, { worker: false });
    const cloned = await replayTo('cloned', ordered, { transfer: 'clone' });
    expect(inline.summary.readerThread).toBe(false);
    expect(inline.files).toEqual(reference.files);
    expect(cloned.files).toEqual(reference.files);
  });

  it('writes nothing of an abandoned merge to an embedded target', async () => {
    const reversed = writeArchive('reversed-embedded', (r, f) => (f === 0 ? [...r].reverse() : r));
    const target = dir('embedded-target');
    const summary = await runReplay({ config: config(target), gateway: reversed.gateway, business: reversed.business, out: 'embedded', reorderWindow: 4 });
    expect(summary.order.mode).toBe('sort');
    expect(summary.written).toEqual(reference.summary.written);
    const log = await openEmbeddedLog(config(target));
    try {
      const access = directAccess(log, new LocalSchemaRegistry(rocksRegistryStorage(log.db)));
      expect(await access.read('samples')).toHaveLength(reference.summary.written.samples);
      expect(await access.read('unmatched')).toHaveLength(reference.summary.written.unmatched);
      expect(await access.read('orphans')).toHaveLength(reference.summary.written.orphans);
    } finally {
      await log.close();
    }
  });
});
