/**
 * Online vs replay: the same generated traffic (1) through the online topology, record by record in
 * arrival order (the embedded harness), and (2) archived from that engine's input topics with
 * `archive`, then rebuilt with `replay`. After compaction to the latest sample per key both hold the
 * same keys, labels, features and protected attributes, record for record; the other outputs match
 * by key too.
 *
 * The traffic has no late records: online, a record arriving after its window closed is `late`,
 * while replay orders by event time and joins it — replay recovers what arrival order lost. Revision
 * numbers are not compared either: online, an older correction arriving after a newer one is
 * skipped (superseded), while replay applies both in event-time order; the final label is the same.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runArchive } from '../cli/archive.js';
import { runReplay, type ReplaySummary } from '../replay/topology.js';
import { startHarness, type EngineHarness } from './helpers/engine-harness.js';
import { generateTraffic } from './reference/traffic.js';

const REQUESTS = 1_500;

interface Sample {
  requestId: string;
  category: string;
  label: string;
  labelSource: string;
  predictedLabel: string;
  modelVersion: string;
  requestTimestamp: number;
  feedbackTimestamp: number | null;
  features: Record<string, number>;
  attributes: Record<string, string>;
  revision: number;
  origin: string;
}

function compared(s: Sample): Omit<Sample, 'revision' | 'origin'> {
  const { revision: _revision, origin: _origin, ...rest } = s;
  return rest;
}

function latestPerKey(samples: readonly Sample[]): Sample[] {
  const latest = new Map<string, Sample>();
  for (const s of samples) latest.set(s.requestId, s);
  return [...latest.values()].sort((a, b) => (a.requestId < b.requestId ? -1 : a.requestId > b.requestId ? 1 : 0));
}

function readJsonLines<T>(path: string): T[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as T);
}

function sortedKeys(values: readonly string[]): string[] {
  return [...values].sort();
}

describe('online and replay produce the same samples', () => {
  let harness: EngineHarness;
  let work: string;
  let online: { samples: Sample[]; unmatched: string[]; orphans: string[]; review: string[]; deadLetters: number };
  let summary: ReplaySummary;
  let out: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'sampleloop-replay-consistency-'));
    harness = await startHarness();
    const traffic = generateTraffic({ seed: 20260105, requests: REQUESTS, lateRate: 0 });
    for (const input of traffic) {
      harness.send(input.kind, input.kind === 'prediction' ? { ...input.value, requestTimestamp: input.value.timestamp - 3 } : input.value);
    }
    harness.flush();
    online = {
      samples: (await harness.outputs('samples')) as Sample[],
      unmatched: (await harness.outputs('unmatched')).map((v) => (v as { prediction: { requestId: string } }).prediction.requestId),
      orphans: (await harness.outputs('orphans')).map((v) => `${(v as { feedback: { requestId: string } }).feedback.requestId}/${(v as { reason: string }).reason}`),
      review: (await harness.outputs('review')).map((v) => (v as { prediction: { requestId: string } }).prediction.requestId),
      deadLetters: (await harness.outputs('dead-letters')).length,
    };
    // The engine holds its data dir (RocksDB allows one process): stop it, as an operator would before archiving.
    await harness.app.close();

    const archiveDir = join(work, 'archive');
    await runArchive(harness.config, { outDir: archiveDir, maxFileBytes: 256 * 1024, raw: false, fromStart: false });
    out = join(work, 'replayed.jsonl');
    summary = await runReplay({
      config: harness.config,
      gateway: [join(archiveDir, 'gateway-*.jsonl.gz')],
      business: [join(archiveDir, 'business-*.jsonl.gz')],
      out: `file:${out}`,
    });
  }, 300_000);

  afterAll(async () => {
    await harness?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('archives the traffic as rolling gzip files, sensitive attributes already protected', () => {
    const files = readdirSync(join(work, 'archive')).filter((f) => f.endsWith('.jsonl.gz'));
    expect(files.filter((f) => f.startsWith('gateway-')).length).toBeGreaterThan(1);
    expect(files.filter((f) => f.startsWith('business-')).length).toBeGreaterThan(0);
    const first = gunzipSync(readFileSync(join(work, 'archive', 'gateway-000001.jsonl.gz'))).toString('utf8').split('\n')[0] ?? '';
    const attributes = (JSON.parse(first) as { attributes: Record<string, string> }).attributes;
    expect(attributes.name).toMatch(/^tok_[A-Za-z0-9_-]{22}$/);
    expect(attributes.idNumber).toMatch(/^tok_/);
    expect(attributes.phone).toMatch(/^\*+\d{4}$/);
    expect(summary.rejected).toBe(0);
  });

  it('has the same keys, labels, features and protected attributes after compaction, record for record', () => {
    const replayed = readJsonLines<Sample>(out);
    const onlineLatest = latestPerKey(online.samples);
    expect(onlineLatest.length).toBeGreaterThan(REQUESTS * 0.7);
    expect(replayed.map((s) => s.requestId)).toEqual(onlineLatest.map((s) => s.requestId));
    expect(replayed.map(compared)).toEqual(onlineLatest.map(compared));
    expect(new Set(replayed.map((s) => s.origin))).toEqual(new Set(['replay']));
    expect(new Set(online.samples.map((s) => s.origin))).toEqual(new Set(['online']));
  });

  it('routes the same requests to unmatched, orphans and review', () => {
    const base = out.replace(/\.jsonl$/, '');
    const unmatched = readJsonLines<{ prediction: { requestId: string } }>(`${base}.unmatched.jsonl`).map((u) => u.prediction.requestId);
    const orphans = readJsonLines<{ feedback: { requestId: string }; reason: string }>(`${base}.orphans.jsonl`).map((o) => `${o.feedback.requestId}/${o.reason}`);
    const review = readJsonLines<{ prediction: { requestId: string } }>(`${base}.review.jsonl`).map((r) => r.prediction.requestId);
    expect(online.unmatched.length).toBeGreaterThan(0);
    expect(online.orphans.length).toBeGreaterThan(0);
    expect(online.review.length).toBeGreaterThan(0);
    expect(sortedKeys(unmatched)).toEqual(sortedKeys(online.unmatched));
    expect(sortedKeys(orphans)).toEqual(sortedKeys(online.orphans));
    expect(sortedKeys(review)).toEqual(sortedKeys(online.review));
    expect(readJsonLines(`${base}.late.jsonl`)).toEqual([]);
    // Duplicate predictions are dead letters both ways.
    expect(summary.written.deadLetters).toBe(online.deadLetters);
  });
});
