import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeRecord } from '../schemas/codec.js';
import { schemaJson } from '../schemas/index.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import type { Feedback, Prediction } from '../schemas/types.js';
import { FLOOR_VARIANTS, measureStorageFloor } from './join-floor.js';
import { checkOutputs, measureEmbeddedJoin, measureLimit } from './join.js';
import { cpuDelta, threadCpuSeconds, weightedPercentile } from './measure.js';
import { floorReplay } from './replay.js';
import { selfTimes, type CpuProfile } from './profile-summary.js';
import { buildWorkload, CONTENDERS, measureContender } from './rocksdb-choice.js';
import { FEEDBACK_DELAY_MS, generateBenchTraffic } from './traffic.js';

const DECODE = { maxBytes: 1024 * 1024 };

describe('bench traffic', () => {
  const traffic = generateBenchTraffic({ predictions: 300, seed: 3 });

  it('has one feedback per prediction, in event-time order, 0.1–30 s after its prediction', () => {
    expect(traffic.events).toBe(600);
    const predictionTime = new Map<string, number>();
    let previous = -Infinity;
    for (let j = 0; j < traffic.events; j++) {
      const t = traffic.timestamp(j);
      expect(t).toBeGreaterThanOrEqual(previous);
      previous = t;
      expect(traffic.requestId(j)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      if (traffic.kind(j) === 'prediction') {
        predictionTime.set(traffic.requestId(j), t);
      } else {
        const tp = predictionTime.get(traffic.requestId(j));
        expect(tp).toBeDefined();
        expect(t - (tp as number)).toBeGreaterThanOrEqual(FEEDBACK_DELAY_MS.min);
        expect(t - (tp as number)).toBeLessThanOrEqual(FEEDBACK_DELAY_MS.max);
      }
    }
    expect(predictionTime.size).toBe(300);
    expect(traffic.expected.samples + traffic.expected.review).toBe(300);
  });

  it('encodes production-shaped records that decode identically from JSON and from Avro', async () => {
    const registry = new LocalSchemaRegistry();
    const predictionId = await registry.register('predictions-value', schemaJson('Prediction'));
    const feedbackId = await registry.register('feedback-value', schemaJson('Feedback'));
    traffic.setAvroSchemaIds(predictionId, feedbackId);
    const categories = new Set<string>();
    for (let j = 0; j < traffic.events; j++) {
      const schema = traffic.kind(j) === 'prediction' ? 'Prediction' : 'Feedback';
      const json = decodeRecord<Prediction | Feedback>(schema, traffic.bytes('json', j), DECODE);
      const avro = decodeRecord<Prediction | Feedback>(schema, traffic.bytes('avro', j), { ...DECODE, writerSchema: (id) => registry.cached(id) });
      expect(json.ok && avro.ok).toBe(true);
      if (!json.ok || !avro.ok) continue;
      expect(avro.value).toEqual(json.value);
      expect(json.value.requestId).toBe(traffic.requestId(j));
      expect(json.value.timestamp).toBe(traffic.timestamp(j));
      if (schema === 'Prediction') {
        const p = json.value as Prediction;
        categories.add(p.category);
        expect(Object.keys(p.features).length).toBeGreaterThanOrEqual(30);
        expect(Object.values(p.features).some((v) => !Number.isInteger(v))).toBe(true);
        expect(Object.keys(p.attributes).sort()).toEqual(['channel', 'idNumber', 'name', 'phone']);
      }
    }
    expect([...categories].sort()).toEqual(['fraud', 'intent']);
  });
});

describe('join benchmark phases', () => {
  it('(a) decodes every input and encodes one sample per prediction', async () => {
    const traffic = generateBenchTraffic({ predictions: 200, formats: ['json'] });
    const r = await measureLimit(traffic, 'json', 64);
    expect(r.records).toBe(400);
    expect(r.samplesEncoded).toBe(200);
    expect(r.bytesIn).toBe(traffic.totalBytes('json'));
    expect(r.recordsPerSecond).toBeGreaterThan(0);
  });

  it('(b) runs the engine to exactly the outputs the traffic implies, with windows closing during the run', async () => {
    // 3000 predictions span ~6 s of event time and feedback comes <= 30 s later: with a 32 s window
    // the earliest windows close while input still flows, the rest at end of input.
    const traffic = generateBenchTraffic({ predictions: 3000, formats: ['json'], seed: 11 });
    const r = await measureEmbeddedJoin(traffic, 'json', { chunk: 500, afterMs: 31_000, graceMs: 1000, maxRssBytes: 8 * 2 ** 30 });
    expect(() => checkOutputs(r.outputs, traffic.expected)).not.toThrow();
    expect(r.outputs.samples).toBe(traffic.expected.samples);
    expect(r.chunks).toBe(12);
    expect(r.latencyMs.p50).toBeLessThanOrEqual(r.latencyMs.p99);
    expect(r.latencyMs.p99).toBeLessThanOrEqual(r.latencyMs.max);
    expect(r.seconds).toBeCloseTo(r.appendSeconds + r.processSeconds + r.endOfInputSeconds, 6);
    expect(r.memory.peakRssBytes).toBeGreaterThanOrEqual(r.memory.baselineRssBytes);
  });

  it.each(FLOOR_VARIANTS)('(c) floor %s encodes one sample per prediction, found through the log and the state store', async (variant) => {
    // 3000 predictions over ~6 s with feedback up to 30 s later: most feedback meets its prediction
    // in an earlier chunk, so it must come back from RocksDB (rocksdb-log) or the resident map.
    const traffic = generateBenchTraffic({ predictions: 3000, formats: ['json', 'avro'], seed: 5 });
    for (const format of ['json', 'avro'] as const) {
      const r = await measureStorageFloor(traffic, format, variant, 250, async (registry) => {
        traffic.setAvroSchemaIds(await registry.register('predictions-value', schemaJson('Prediction')), await registry.register('feedback-value', schemaJson('Feedback')));
      });
      expect(r.records).toBe(6000);
      expect(r.samples).toBe(3000);
      expect(r.recordsPerMainThreadCpuSecond).toBeGreaterThan(0);
    }
  });
});

describe('measurement helpers', () => {
  it('weightedPercentile counts each value as often as its weight', () => {
    expect(weightedPercentile([10, 20, 30], [98, 1, 1], 50)).toBe(10);
    expect(weightedPercentile([10, 20, 30], [98, 1, 1], 99)).toBe(20);
    expect(weightedPercentile([30, 10, 20], [1, 98, 1], 100)).toBe(30);
  });

  it.runIf(process.platform === 'linux')('threadCpuSeconds charges JavaScript work to the main thread', () => {
    const before = threadCpuSeconds();
    const cpu = process.cpuUsage();
    let x = 0;
    while (process.cpuUsage(cpu).user < 150_000) x += Math.sqrt(x + 1);
    const delta = cpuDelta(before, threadCpuSeconds());
    expect(x).toBeGreaterThan(0);
    expect(delta.main).toBeGreaterThanOrEqual(0.1);
    expect(Object.keys(delta)).toContain('main');
  });

  it('selfTimes attributes sample time to the sampled function and names native code by its caller', () => {
    const profile: CpuProfile = {
      startTime: 0,
      endTime: 6000,
      nodes: [
        { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1, columnNumber: -1 }, children: [2] },
        { id: 2, callFrame: { functionName: 'write', url: 'file:///x/state/rocks.js', lineNumber: 9, columnNumber: 0 }, children: [3] },
        { id: 3, callFrame: { functionName: '', url: '', lineNumber: -1, columnNumber: -1 } },
      ],
      samples: [2, 3, 3],
      timeDeltas: [1000, 2000, 3000],
    };
    const times = selfTimes(profile, '/x');
    expect(times.map((t) => [t.frame, t.selfMs])).toEqual([
      ['(native) in write (state/rocks.js:10)', 5],
      ['write (state/rocks.js:10)', 1],
    ]);
    expect(times[0]?.share).toBeCloseTo(5 / 6, 6);
  });
});

describe('rocksdb choice (the fork only; the classic package runs in its own test file)', () => {
  it('runs every phase on @nxtedition/rocksdb and reads back what it wrote', async () => {
    const w = buildWorkload(2000, { seed: 5 });
    expect(w.batches.length).toBe(4);
    expect(w.batches[0]?.[0]?.[1].length).toBe(600);
    for (const contender of CONTENDERS.filter((c) => c.name.startsWith('@nxtedition'))) {
      const phases = await measureContender(contender, w);
      const byPhase = Object.fromEntries(phases.map((p) => [p.phase, p]));
      expect(byPhase.put?.rows).toBe(2000);
      expect(byPhase.get?.rows).toBe(2000);
      expect(byPhase.scan?.rows).toBe(w.scanStarts.length * w.scanLimit);
      expect(phases.every((p) => p.opsPerSecond > 0)).toBe(true);
    }
  });
});

describe('replay benchmark floor', () => {
  it('pairs every feedback line with its prediction and writes one sample line per pair', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sampleloop-floor-test-'));
    try {
      const traffic = generateBenchTraffic({ predictions: 300, formats: ['json'], seed: 3 });
      const lines = { gateway: [] as string[], business: [] as string[] };
      for (let e = 0; e < traffic.events; e++) lines[traffic.kind(e) === 'prediction' ? 'gateway' : 'business'].push(traffic.bytes('json', e).toString('utf8'));
      const paths = { gateway: join(dir, 'gateway.jsonl.gz'), business: join(dir, 'business.jsonl.gz') };
      writeFileSync(paths.gateway, gzipSync(`${lines.gateway.join('\n')}\n`));
      writeFileSync(paths.business, gzipSync(lines.business.join('\n')));
      const r = await floorReplay(paths, join(dir, 'out.jsonl'));
      expect(r.records).toBe(600);
      expect(r.samples).toBe(300);
      const written = readFileSync(join(dir, 'out.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { requestId: string; origin: string });
      expect(new Set(written.map((s) => s.requestId))).toEqual(new Set(lines.gateway.map((l) => (JSON.parse(l) as Prediction).requestId)));
      expect(written.every((s) => s.origin === 'replay')).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
