/**
 * The retrain trigger on the real embedded runtime with a wall clock the test controls: samples are
 * appended straight to the samples topic (Avro, as the samples topology writes them), model versions
 * to the models topic, and the RetrainTrigger records are read back decoded.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { directAccess } from '../access/embedded.js';
import { EmbeddedLog } from '../engine/embedded/log.js';
import { rocksRegistryStorage } from '../schemas/registry-storage.js';
import { EmbeddedRuntime } from '../engine/embedded/runtime.js';
import { silentLogger } from '../engine/logger.js';
import { EngineMetrics } from '../engine/metrics.js';
import { holdoutPosition } from '../models/holdout.js';
import { embeddedTrainerLog, readSnapshotSamples } from '../models/trainer-job.js';
import type { TriggerSettings } from '../processors/retrain-trigger.js';
import { encodeFramed } from '../schemas/codec.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import type { LabeledSample, LabelSource, ModelVersion, RetrainTrigger } from '../schemas/types.js';
import { registerOutputSchemas } from '../topologies/serde.js';
import { buildTriggerTopologies, triggerOutputs, type TriggerTopics } from '../topologies/trigger.js';
import { startHarness, type EngineHarness } from './helpers/engine-harness.js';

const TOPICS: TriggerTopics = { samples: 'samples', models: 'models', repartition: 'test-trigger-repartition', triggers: 'retrain-triggers' };
const START = 1_800_000_000_000;
const HOUR = 3600_000;

/** Every rule off; each test turns on the one it checks. */
const QUIET: TriggerSettings = {
  minNewSamples: 1_000_000,
  minLiveAccuracy: 0,
  minWindowSamples: 1,
  windowSamples: 100,
  maxAgeMs: null,
  minNewSamplesForAge: 1,
  debounceMs: HOUR,
  checkIntervalMs: 1000,
  minFirstVersionSamples: 1_000_000,
  maxFeaturePsi: null,
  minDriftSamples: 1,
  driftBins: 10,
  driftReferenceSamples: 100,
};

interface Bench {
  dir: string;
  log: EmbeddedLog;
  registry: LocalSchemaRegistry;
  clock: { now: number };
  /** Appends one sample; returns where it landed. */
  sample(requestId: string, fields?: Partial<LabeledSample>): { partition: number; offset: number };
  model(category: string, version: string, sequence: number, createdAt: number): void;
  /** Processes until nothing moves (each pass commits, so re-keyed records reach the trigger). */
  pump(): void;
  /** Advances the wall clock and runs one step (due punctuations) and a commit. */
  tick(ms: number): void;
  triggers(): Promise<RetrainTrigger[]>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

const benches: Bench[] = [];
const harnesses: EngineHarness[] = [];
afterEach(async () => {
  for (const b of benches.splice(0)) await b.close();
  for (const h of harnesses.splice(0)) await h.close();
});

async function startBench(settings: Partial<TriggerSettings>, partitions = 2, perCategory: Record<string, Partial<TriggerSettings>> = {}): Promise<Bench> {
  const dir = mkdtempSync(join(tmpdir(), 'sampleloop-trigger-'));
  const clock = { now: START };
  let log: EmbeddedLog;
  let registry: LocalSchemaRegistry;
  let runtime: EmbeddedRuntime;
  let ids: { sample: number; model: number };

  const open = async (): Promise<void> => {
    log = await EmbeddedLog.open(dir);
    registry = new LocalSchemaRegistry(rocksRegistryStorage(log.db));
    const serdes = await registerOutputSchemas(registry, [
      { topic: TOPICS.samples, schema: 'LabeledSample' },
      { topic: TOPICS.models, schema: 'ModelVersion' },
      { topic: 'dead-letters', schema: 'DeadLetter' },
      ...triggerOutputs(TOPICS),
    ]);
    ids = { sample: serdes.schemaId(TOPICS.samples) as number, model: serdes.schemaId(TOPICS.models) as number };
    const deadLetterId = serdes.schemaId('dead-letters') as number;
    log.ensureTopic(TOPICS.samples, { partitions, compact: true });
    log.ensureTopic(TOPICS.models, { partitions: 1 });
    const topologies = buildTriggerTopologies({
      topics: TOPICS,
      settings: { ...QUIET, ...settings },
      settingsFor: (category) => ({ ...QUIET, ...settings, ...perCategory[category] }),
      serdes,
      writerSchema: (id) => registry.cached(id),
      samplesPartitions: () => partitions,
      now: () => clock.now,
    });
    runtime = new EmbeddedRuntime(log, topologies, {
      applicationId: 'trigger-test',
      logger: silentLogger(),
      metrics: new EngineMetrics(),
      deadLetterTopic: 'dead-letters',
      encodeDeadLetter: (e) => encodeFramed('DeadLetter', deadLetterId, e),
      defaultTopic: { partitions },
      now: () => clock.now,
    });
    runtime.start();
  };
  await open();

  const bench: Bench = {
    dir,
    get log() {
      return log;
    },
    get registry() {
      return registry;
    },
    clock,
    sample(requestId, fields = {}) {
      const value: LabeledSample = {
        requestId,
        category: 'fraud',
        features: { amount: 10 },
        attributes: {},
        label: 'legit',
        labelSource: 'CONFIRMED',
        predictedLabel: 'legit',
        modelVersion: 'v1',
        requestTimestamp: clock.now,
        feedbackTimestamp: clock.now,
        revision: 0,
        origin: 'online',
        ...fields,
      };
      const [at] = log.append([{ topic: TOPICS.samples, key: Buffer.from(requestId), value: encodeFramed('LabeledSample', ids.sample, value), timestamp: clock.now, headers: {} }]);
      return { partition: at?.partition ?? -1, offset: at?.offset ?? -1 };
    },
    model(category, version, sequence, createdAt) {
      const value: ModelVersion = {
        category,
        version,
        sequence,
        createdAt,
        onnx: Buffer.from('not a model'),
        onnxUri: null,
        modelSha256: '',
        featureNames: ['amount'],
        classes: ['fraud', 'legit'],
        metrics: {},
        trainingSnapshot: null,
        trainer: 'test',
        prevRecordHash: '',
        recordHash: '',
      };
      log.append([{ topic: TOPICS.models, key: Buffer.from(category), value: encodeFramed('ModelVersion', ids.model, value), timestamp: createdAt, headers: {} }]);
    },
    pump() {
      for (let i = 0; i < 10 && runtime.runUntilIdle() > 0; i++);
    },
    tick(ms) {
      clock.now += ms;
      runtime.step();
      runtime.commit();
      bench.pump();
    },
    async triggers() {
      if (!log.topic(TOPICS.triggers)) return [];
      const records = await directAccess(log, registry).read(TOPICS.triggers);
      return records.sort((a, b) => a.timestamp - b.timestamp || a.partition - b.partition || a.offset - b.offset).map((r) => r.value as RetrainTrigger);
    },
    async restart() {
      runtime.close();
      await log.close();
      await open();
    },
    async close() {
      runtime.close();
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  benches.push(bench);
  return bench;
}

function endOffsets(log: EmbeddedLog, partitions: number): Array<{ partition: number; offset: number }> {
  return Array.from({ length: partitions }, (_, p) => ({ partition: p, offset: log.endOffset(TOPICS.samples, p) }));
}

describe('retrain trigger: sample count, debounce, new versions', () => {
  it('fires on the Nth new sample with the snapshot of the samples counted, then is debounced until a new version or the debounce passes', async () => {
    const b = await startBench({ minNewSamples: 5, debounceMs: HOUR });
    for (let i = 1; i <= 4; i++) b.sample(`r${i}`);
    b.pump();
    expect(await b.triggers()).toEqual([]);

    b.sample('r5');
    b.pump();
    const first = await b.triggers();
    expect(first).toEqual([
      {
        triggerId: 'fraud-v1-1',
        category: 'fraud',
        reason: 'sample-count',
        details: { newSamples: 5, totalSamples: 5, windowSamples: 5, liveAccuracy: 1, ageMs: 0 },
        servingVersion: 'v1',
        snapshot: { topic: 'samples', offsets: endOffsets(b.log, 2), sampleCount: 5 },
        createdAt: START,
        driftedFeatures: [],
      },
    ]);
    expect(first[0]?.snapshot.offsets.reduce((n, o) => n + o.offset, 0)).toBe(5);

    // Pending: more samples do not fire again before the debounce passes.
    for (let i = 6; i <= 9; i++) b.sample(`r${i}`);
    b.pump();
    b.tick(HOUR - 1000);
    expect(await b.triggers()).toHaveLength(1);

    // Debounce over: the wall-clock check fires the second trigger with everything counted so far.
    b.tick(1000);
    const second = (await b.triggers())[1];
    expect(second).toMatchObject({
      triggerId: 'fraud-v1-2',
      reason: 'sample-count',
      details: { newSamples: 9, totalSamples: 9 },
      snapshot: { offsets: endOffsets(b.log, 2), sampleCount: 9 },
      createdAt: START + HOUR,
    });

    // A new version in the ledger ends the pending trigger and restarts the count.
    b.model('fraud', 'v2', 1, b.clock.now);
    b.pump();
    for (let i = 10; i <= 13; i++) b.sample(`r${i}`, { modelVersion: 'v2' });
    b.pump();
    expect(await b.triggers()).toHaveLength(2);
    b.sample('r14', { modelVersion: 'v2' });
    b.pump();
    const third = (await b.triggers())[2];
    expect(third).toMatchObject({
      triggerId: 'fraud-v2-1',
      servingVersion: 'v2',
      details: { newSamples: 5, totalSamples: 14, ageMs: 0 },
      snapshot: { offsets: endOffsets(b.log, 2), sampleCount: 14 },
    });
  });

  it('never fires twice on the same data: after the debounce a pending trigger repeats only when samples arrived', async () => {
    const b = await startBench({ minNewSamples: 3, debounceMs: 1000 });
    for (let i = 1; i <= 3; i++) b.sample(`r${i}`);
    b.pump();
    b.tick(5000);
    b.tick(5000);
    expect((await b.triggers()).map((t) => t.triggerId)).toEqual(['fraud-v1-1']);
    b.sample('r4');
    b.pump();
    expect((await b.triggers()).map((t) => t.triggerId)).toEqual(['fraud-v1-1', 'fraud-v1-2']);
  });

  it('counts a request once whatever its revisions, and ignores replays of an older revision', async () => {
    const b = await startBench({ minNewSamples: 5 });
    for (let i = 1; i <= 4; i++) b.sample(`r${i}`);
    for (let i = 1; i <= 4; i++) b.sample(`r${i}`, { revision: 1, labelSource: 'CORRECTED', label: 'fraud' });
    b.sample('r1', { revision: 0 });
    b.sample('r2', { revision: 1, labelSource: 'CORRECTED', label: 'fraud' });
    b.pump();
    expect(await b.triggers()).toEqual([]);
    b.sample('r5');
    b.pump();
    const [trigger] = await b.triggers();
    expect(trigger?.details).toMatchObject({ newSamples: 5, totalSamples: 5 });
    expect(trigger?.snapshot.sampleCount).toBe(5);
  });

  it('learns a new serving version from the samples, and a late sample of the old version does not switch back', async () => {
    const b = await startBench({ minNewSamples: 3 });
    b.sample('a1', { modelVersion: 'v1' });
    b.sample('a2', { modelVersion: 'v1' });
    b.pump();
    b.sample('b1', { modelVersion: 'v2' });
    b.sample('a3', { modelVersion: 'v1' });
    b.sample('b2', { modelVersion: 'v2' });
    b.pump();
    const [trigger] = await b.triggers();
    expect(trigger).toMatchObject({ triggerId: 'fraud-v2-1', servingVersion: 'v2', details: { newSamples: 3, totalSamples: 5 } });
  });

  it('keeps its counts across a restart', async () => {
    const b = await startBench({ minNewSamples: 5 });
    for (let i = 1; i <= 3; i++) b.sample(`r${i}`);
    b.pump();
    await b.restart();
    b.sample('r1'); // already counted before the restart
    b.sample('r4');
    b.pump();
    expect(await b.triggers()).toEqual([]);
    b.sample('r5');
    b.pump();
    expect((await b.triggers())[0]?.details).toMatchObject({ newSamples: 5, totalSamples: 5 });
  });
});

describe('retrain trigger: live accuracy', () => {
  function labeled(correct: boolean): Partial<LabeledSample> {
    const labelSource: LabelSource = correct ? 'CONFIRMED' : 'CORRECTED';
    return { labelSource, label: correct ? 'legit' : 'fraud' };
  }

  it('fires when the share of CONFIRMED in the window falls below the threshold, once the window is big enough', async () => {
    const b = await startBench({ minLiveAccuracy: 0.7, minWindowSamples: 10, windowSamples: 20 });
    const outcomes = [true, true, true, true, true, true, false, false, false];
    outcomes.forEach((ok, i) => b.sample(`r${i}`, labeled(ok)));
    b.pump();
    expect(await b.triggers()).toEqual([]); // 6/9 < 0.7 but only 9 in the window
    b.sample('r9', labeled(false));
    b.pump();
    const [trigger] = await b.triggers();
    expect(trigger).toMatchObject({ reason: 'accuracy-drop', details: { liveAccuracy: 0.6, windowSamples: 10, newSamples: 10 } });
  });

  it('slides: only the last windowSamples samples count', async () => {
    // One partition: "last" is only defined within a partition.
    const b = await startBench({ minLiveAccuracy: 0.5, minWindowSamples: 10, windowSamples: 10 }, 1);
    for (let i = 0; i < 10; i++) b.sample(`ok${i}`, labeled(true));
    for (let i = 0; i < 5; i++) b.sample(`bad${i}`, labeled(false));
    b.pump();
    expect(await b.triggers()).toEqual([]); // window = 5 right + 5 wrong = 0.5
    b.sample('bad5', labeled(false));
    b.pump();
    expect((await b.triggers())[0]).toMatchObject({ reason: 'accuracy-drop', details: { liveAccuracy: 0.4, windowSamples: 10, newSamples: 16 } });
  });

  it('a correcting revision of a request in the window changes its vote; DEFAULT samples stay out of the window', async () => {
    const b = await startBench({ minLiveAccuracy: 0.7, minWindowSamples: 10, windowSamples: 20 });
    for (let i = 0; i < 8; i++) b.sample(`ok${i}`, labeled(true));
    for (let i = 0; i < 2; i++) b.sample(`bad${i}`, labeled(false));
    for (let i = 0; i < 5; i++) b.sample(`default${i}`, { labelSource: 'DEFAULT' });
    b.pump();
    expect(await b.triggers()).toEqual([]); // 8/10
    b.sample('ok0', { ...labeled(false), revision: 1 });
    b.sample('ok1', { ...labeled(false), revision: 1 });
    b.pump();
    expect((await b.triggers())[0]).toMatchObject({ reason: 'accuracy-drop', details: { liveAccuracy: 0.6, windowSamples: 10, newSamples: 15 } });
  });

  it('judges the serving version only: samples predicted by an older version are new samples but not in the window', async () => {
    const b = await startBench({ minLiveAccuracy: 0.7, minWindowSamples: 3, windowSamples: 20, minNewSamples: 6 });
    b.model('fraud', 'v2', 1, START);
    b.pump();
    for (let i = 0; i < 5; i++) b.sample(`old${i}`, { ...labeled(false), modelVersion: 'v1' });
    b.pump();
    expect(await b.triggers()).toEqual([]);
    b.sample('new0', { ...labeled(true), modelVersion: 'v2' });
    b.pump();
    expect((await b.triggers())[0]).toMatchObject({ reason: 'sample-count', servingVersion: 'v2', details: { newSamples: 6, windowSamples: 1, liveAccuracy: 1 } });
  });
});

describe('retrain trigger: age', () => {
  it('fires on the wall-clock check once the serving version is maxAgeMs old and has new samples', async () => {
    const b = await startBench({ maxAgeMs: 24 * HOUR, minNewSamplesForAge: 2 });
    b.model('fraud', 'v7', 3, START);
    b.pump();
    b.tick(25 * HOUR);
    expect(await b.triggers()).toEqual([]); // old, but nothing new to learn from
    b.sample('r1', { modelVersion: 'v7' });
    b.pump();
    expect(await b.triggers()).toEqual([]); // 1 < minNewSamplesForAge
    b.sample('r2', { modelVersion: 'v7' });
    b.pump();
    expect((await b.triggers())[0]).toMatchObject({ triggerId: 'fraud-v7-1', reason: 'age', details: { ageMs: 25 * HOUR, newSamples: 2 }, createdAt: START + 25 * HOUR });
  });

  it('fires from the periodic check without any new record', async () => {
    const b = await startBench({ maxAgeMs: 24 * HOUR });
    b.model('fraud', 'v7', 3, START);
    b.sample('r1', { modelVersion: 'v7' });
    b.pump();
    b.tick(23 * HOUR);
    expect(await b.triggers()).toEqual([]);
    b.tick(HOUR);
    expect((await b.triggers())[0]).toMatchObject({ reason: 'age', details: { ageMs: 24 * HOUR, newSamples: 1 }, createdAt: START + 24 * HOUR });
  });
});

describe('retrain trigger: snapshots across partitions and categories', () => {
  it('the snapshot holds exactly the samples the trigger counted, per category, over 3 partitions', async () => {
    const b = await startBench({ minNewSamples: 7 }, 3);
    for (let i = 0; i < 40; i++) b.sample(`req-${i}`, { category: i % 2 === 0 ? 'fraud' : 'churn' });
    b.pump();
    const triggers = await b.triggers();
    expect(triggers.map((t) => t.category).sort()).toEqual(['churn', 'fraud']);
    for (const t of triggers) {
      expect(t.snapshot.offsets.map((o) => o.partition)).toEqual([0, 1, 2]);
      expect(t.snapshot.sampleCount).toBe(7);
      const inSnapshot = await readSnapshotSamples(embeddedTrainerLog(b.log), (id) => b.registry.cached(id), t.snapshot, t.category);
      expect(inSnapshot).toHaveLength(7);
      for (const o of t.snapshot.offsets) expect(o.offset).toBeLessThanOrEqual(b.log.endOffset('samples', o.partition));
    }
  });

  it('sends samples it cannot read to the dead-letter topic and keeps going', async () => {
    const b = await startBench({ minNewSamples: 2 });
    b.log.append([{ topic: 'samples', key: Buffer.from('junk'), value: Buffer.from('not a sample'), timestamp: START, headers: {} }]);
    b.sample('r1');
    b.sample('r2');
    b.pump();
    expect((await b.triggers())[0]?.details.newSamples).toBe(2);
    const dead = await directAccess(b.log, b.registry).read('dead-letters');
    expect(dead.map((d) => (d.value as { reasonCode: string }).reasonCode)).toEqual(['undecodable-sample']);
  });
});

describe('retrain trigger inside startEmbeddedApp', () => {
  it('predictions + feedback → samples → trigger, with trigger.enabled', async () => {
    const h = await startHarness({ config: { trigger: { enabled: true, minNewSamples: 3 }, join: { beforeMs: 10, afterMs: 100, graceMs: 50 } } });
    harnesses.push(h);
    const t = h.wallClock();
    for (let i = 0; i < 3; i++) {
      h.send('prediction', {
        requestId: `q${i}`,
        category: 'loan',
        features: { income: 1000 + i },
        attributes: {},
        predictedLabel: 'approve',
        scores: { approve: 0.9, reject: 0.1 },
        modelVersion: '4',
        modelHash: '',
        requestTimestamp: t + i,
        timestamp: t + i,
      });
      h.send('feedback', { requestId: `q${i}`, timestamp: t + i + 5, source: '', actualLabel: i === 0 ? 'reject' : 'approve', correct: null });
    }
    for (let i = 0; i < 5; i++) h.app.runtime.runUntilIdle();
    const triggers = (await h.outputs('retrain-triggers')) as RetrainTrigger[];
    expect(triggers).toHaveLength(1);
    expect(triggers[0]).toMatchObject({
      triggerId: 'loan-4-1',
      category: 'loan',
      reason: 'sample-count',
      servingVersion: '4',
      details: { newSamples: 3, windowSamples: 3 },
      snapshot: { topic: 'samples', offsets: [{ partition: 0, offset: 3 }], sampleCount: 3 },
    });
    expect(triggers[0]?.details.liveAccuracy).toBeCloseTo(2 / 3, 12);
  });
});

describe('retrain trigger: first version, per-category settings, age from serving', () => {
  it('fires first-version once a category with nothing in the ledger has minFirstVersionSamples samples', async () => {
    const b = await startBench({ minFirstVersionSamples: 4 });
    for (let i = 1; i <= 3; i++) b.sample(`r${i}`, { modelVersion: '' });
    b.pump();
    expect(await b.triggers()).toEqual([]);
    b.sample('r4', { modelVersion: '' });
    b.pump();
    expect(await b.triggers()).toEqual([
      {
        triggerId: 'fraud-none-1',
        category: 'fraud',
        reason: 'first-version',
        details: { newSamples: 4, totalSamples: 4, windowSamples: 4, liveAccuracy: 1 },
        servingVersion: '',
        snapshot: { topic: 'samples', offsets: endOffsets(b.log, 2), sampleCount: 4 },
        createdAt: START,
        driftedFeatures: [],
      },
    ]);
  });

  it('does not fire first-version for a category with a version in the ledger', async () => {
    const b = await startBench({ minFirstVersionSamples: 2 });
    b.model('fraud', 'v1', 1, START);
    b.pump();
    for (let i = 1; i <= 5; i++) b.sample(`r${i}`);
    b.pump();
    expect(await b.triggers()).toEqual([]);
  });

  it('applies a category\'s own settings over the global ones', async () => {
    const b = await startBench({ minNewSamples: 5 }, 2, { small: { minNewSamples: 2 } });
    for (let i = 1; i <= 2; i++) b.sample(`s${i}`, { category: 'small' });
    for (let i = 1; i <= 4; i++) b.sample(`f${i}`);
    b.pump();
    expect((await b.triggers()).map((t) => [t.category, t.reason, t.details.newSamples])).toEqual([['small', 'sample-count', 2]]);
    b.sample('f5');
    b.pump();
    expect((await b.triggers()).map((t) => [t.category, t.details.newSamples])).toEqual([
      ['small', 2],
      ['fraud', 5],
    ]);
  });

  it('counts a version\'s age from when the trigger learns it serves, not from its createdAt (published before the app ran)', async () => {
    const b = await startBench({ maxAgeMs: 24 * HOUR });
    b.model('fraud', 'v7', 3, START - 10 * HOUR); // published 10 h before the app started
    b.sample('r1', { modelVersion: 'v7' });
    b.pump();
    b.tick(23 * HOUR);
    expect(await b.triggers()).toEqual([]);
    b.tick(HOUR);
    expect((await b.triggers())[0]).toMatchObject({ reason: 'age', details: { ageMs: 24 * HOUR }, createdAt: START + 24 * HOUR });
  });

  it('a version first seen in samples ages from then, also when its ledger record arrives later', async () => {
    const b = await startBench({ maxAgeMs: 24 * HOUR });
    b.sample('r1', { modelVersion: 'v7' });
    b.pump();
    b.tick(2 * HOUR);
    b.model('fraud', 'v7', 3, START + 2 * HOUR);
    b.pump();
    b.tick(22 * HOUR);
    expect((await b.triggers())[0]).toMatchObject({ reason: 'age', details: { ageMs: 24 * HOUR } });
  });
});

describe('retrain trigger: feature-drift', () => {
  /** A well-spread sequence in [0, 1) (golden-ratio steps), so the test needs no random numbers. */
  const spread = (i: number): number => (i * 0.6180339887498949) % 1;
  const DRIFT: Partial<TriggerSettings> = { maxFeaturePsi: 0.2, minDriftSamples: 200, driftBins: 10, driftReferenceSamples: 200 };

  async function servingWithReference(): Promise<Bench> {
    const b = await startBench(DRIFT);
    // 300 samples before v2: its reference (amount in [0, 100), age in [20, 80))
    for (let i = 0; i < 300; i++) b.sample(`ref-${i}`, { modelVersion: 'v1', features: { amount: 100 * spread(i), age: 20 + 60 * spread(i + 7) } });
    b.pump();
    b.model('fraud', 'v2', 2, START);
    b.pump();
    return b;
  }

  it('stays quiet while the live distribution matches the reference', async () => {
    const b = await servingWithReference();
    for (let i = 0; i < 400; i++) b.sample(`live-${i}`, { modelVersion: 'v2', features: { amount: 100 * spread(i + 1000), age: 20 + 60 * spread(i + 2000) } });
    b.pump();
    expect(await b.triggers()).toEqual([]);
  });

  it('fires on a shifted feature after minDriftSamples, naming only the features that moved and by how much', async () => {
    const b = await servingWithReference();
    // amount shifts up by 40 (most live values land in the reference's top bins and above); age does not move
    for (let i = 0; i < 199; i++) b.sample(`live-${i}`, { modelVersion: 'v2', features: { amount: 40 + 100 * spread(i + 1000), age: 20 + 60 * spread(i + 2000) } });
    b.pump();
    expect(await b.triggers()).toEqual([]); // 199 < minDriftSamples
    b.sample('live-199', { modelVersion: 'v2', features: { amount: 40 + 100 * spread(1199), age: 20 + 60 * spread(2199) } });
    b.pump();
    const [trigger] = await b.triggers();
    expect(trigger).toMatchObject({ triggerId: 'fraud-v2-1', reason: 'feature-drift', servingVersion: 'v2', details: { driftSamples: 200, driftReferenceSamples: 300, newSamples: 200 } });
    expect(trigger?.driftedFeatures?.map((f) => f.feature)).toEqual(['amount']);
    const psi = trigger?.driftedFeatures?.[0]?.psi as number;
    // 40% of the live values lie above the reference maximum (a bin the reference leaves empty) and the
    // 4 lowest reference deciles get none: PSI well above 1
    expect(psi).toBeGreaterThan(1);
    expect(trigger?.details.maxFeaturePsi).toBe(psi);
  });

  it('keeps a bounded reference: the requests below a hash threshold that halves past 2 x driftReferenceSamples', async () => {
    const b = await startBench({ ...DRIFT, minDriftSamples: 10, driftReferenceSamples: 10 });
    const ids = Array.from({ length: 300 }, (_, i) => `ref-${i}`);
    for (const [i, id] of ids.entries()) b.sample(id, { modelVersion: 'v1', features: { amount: 100 * spread(i) } });
    b.pump();
    b.model('fraud', 'v2', 2, START);
    b.pump();
    for (let i = 0; i < 10; i++) b.sample(`live-${i}`, { modelVersion: 'v2', features: { amount: 1000 + i } });
    b.pump();
    // computed independently: halve the threshold while more than 20 of all 300 requests fall below it
    let threshold = 1;
    while (ids.filter((id) => holdoutPosition(id) < threshold).length > 20) threshold /= 2;
    const expected = ids.filter((id) => holdoutPosition(id) < threshold).length;
    expect(expected).toBeGreaterThanOrEqual(10);
    const [trigger] = await b.triggers();
    expect(trigger).toMatchObject({ reason: 'feature-drift', details: { driftSamples: 10, driftReferenceSamples: expected } });
    expect(trigger?.driftedFeatures?.map((f) => f.feature)).toEqual(['amount']);
  });

  it('has no reference for a version nothing was seen before (a seed model): the rule waits for the next version', async () => {
    const b = await startBench(DRIFT);
    b.model('fraud', 'v1', 1, START);
    b.pump();
    for (let i = 0; i < 300; i++) b.sample(`live-${i}`, { modelVersion: 'v1', features: { amount: 1000 + i } });
    b.pump();
    expect(await b.triggers()).toEqual([]);
  });
});
