/**
 * The built-in trainer on digits samples: features from the dataset rows, labels from the ground
 * truth, written to the samples topic as the samples topology writes them. Serving versions live in
 * the real model ledger (models/ledger.ts) on the same embedded log.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { directAccess } from '../access/embedded.js';
import { startEmbeddedApp, type EmbeddedApp } from '../app/embedded.js';
import { EmbeddedLog } from '../engine/embedded/log.js';
import { rocksRegistryStorage } from '../schemas/registry-storage.js';
import { parseConfig } from '../config/config.js';
import { silentLogger } from '../engine/logger.js';
import { EngineMetrics } from '../engine/metrics.js';
import { loadDataset, type Dataset } from '../models/datasets/index.js';
import { holdoutPosition } from '../models/holdout.js';
import { ledgerClient, type LedgerClient } from '../models/ledger.js';
import { trainLogistic } from '../models/logistic-regression.js';
import { exportOnnx, modelSha256 } from '../models/onnx-export.js';
import {
  buildTrainingSet,
  naturalCompare,
  readSnapshotSamples,
  embeddedTrainerLog,
  type TrainerLog,
  splitHoldout,
  trainOnTrigger,
  TRAINER_ID,
  TrainerJob,
  startTrainerLoop,
  type LedgerPort,
  type NewModelVersion,
  type TrainerDecision,
  type TrainerProgress,
  type TrainerSettings,
} from '../models/trainer-job.js';
import { encodeFramed } from '../schemas/codec.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import type { LabeledSample, ModelVersion, RetrainTrigger } from '../schemas/types.js';
import { registerOutputSchemas } from '../topologies/serde.js';

const SETTINGS: TrainerSettings = {
  holdoutFraction: 0.2,
  minTrainSamples: 20,
  minHoldoutSamples: 10,
  promotionTest: 'mcnemar',
  significance: 0.05,
  minImprovement: 0,
  refitOnAll: false,
  l2: 1e-3,
  maxIterations: 500,
  tolerance: 1e-5,
  pollIntervalMs: 50,
  progressEveryIterations: 10,
};
const NOW = 1_800_000_000_000;

let digits: Dataset;
beforeAll(() => {
  digits = loadDataset('digits');
});

interface Fixture {
  log: EmbeddedLog;
  trainerLog: TrainerLog;
  registry: LocalSchemaRegistry;
  ledger: LedgerClient;
  lookup: (id: number) => ReturnType<LocalSchemaRegistry['cached']>;
  /** Appends digits rows as samples (requestId `digit-<i>`); returns the end offsets after. */
  appendDigits(indices: readonly number[], override?: (i: number) => Partial<LabeledSample>): Array<{ partition: number; offset: number }>;
  endOffsets(): Array<{ partition: number; offset: number }>;
  trigger(offsets: Array<{ partition: number; offset: number }>, sampleCount: number, id?: string): RetrainTrigger;
  appendTrigger(trigger: RetrainTrigger): void;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function fixture(partitions = 2): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'sampleloop-trainer-'));
  const log = await EmbeddedLog.open(dir);
  cleanups.push(async () => {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const registry = new LocalSchemaRegistry(rocksRegistryStorage(log.db));
  const serdes = await registerOutputSchemas(registry, [
    { topic: 'samples', schema: 'LabeledSample' },
    { topic: 'retrain-triggers', schema: 'RetrainTrigger' },
  ]);
  log.ensureTopic('samples', { partitions, compact: true });
  log.ensureTopic('retrain-triggers', { partitions: 1 });
  const sampleId = serdes.schemaId('samples') as number;
  const triggerId = serdes.schemaId('retrain-triggers') as number;
  const endOffsets = (): Array<{ partition: number; offset: number }> =>
    Array.from({ length: partitions }, (_, p) => ({ partition: p, offset: log.endOffset('samples', p) }));
  return {
    log,
    trainerLog: embeddedTrainerLog(log, ['retrain-triggers', 'trainer-decisions']),
    registry,
    ledger: ledgerClient(directAccess(log, registry, () => NOW), 'models'),
    lookup: (id) => registry.cached(id),
    appendDigits(indices, override = () => ({})) {
      log.append(
        indices.map((i) => {
          const row = digits.rows[i] as Dataset['rows'][number];
          const features: Record<string, number> = {};
          digits.featureNames.forEach((name, j) => (features[name] = row.features[j] as number));
          const sample: LabeledSample = {
            requestId: `digit-${i}`,
            category: 'digits',
            features,
            attributes: {},
            label: row.label,
            labelSource: 'CONFIRMED',
            predictedLabel: row.label,
            modelVersion: '1',
            requestTimestamp: NOW,
            feedbackTimestamp: NOW,
            revision: 0,
            origin: 'online',
            ...override(i),
          };
          return { topic: 'samples', key: Buffer.from(sample.requestId), value: encodeFramed('LabeledSample', sampleId, sample), timestamp: NOW, headers: {} };
        }),
      );
      return endOffsets();
    },
    endOffsets,
    trigger(offsets, sampleCount, id = 'digits-1-1') {
      return { triggerId: id, category: 'digits', reason: 'sample-count', details: { newSamples: sampleCount }, servingVersion: '1', snapshot: { topic: 'samples', offsets, sampleCount }, createdAt: NOW };
    },
    appendTrigger(trigger) {
      log.append([{ topic: 'retrain-triggers', key: Buffer.from(trigger.category), value: encodeFramed('RetrainTrigger', triggerId, trigger), timestamp: NOW, headers: {} }]);
    },
  };
}

const ALL = (): number[] => digits.rows.map((_, i) => i);

/** Publishes a model trained on the given digits rows as the serving version. */
async function publishServing(ledger: LedgerClient, indices: readonly number[], version = '1'): Promise<ModelVersion> {
  const model = trainLogistic(
    indices.map((i) => digits.rows[i] as Dataset['rows'][number]),
    digits.featureNames,
    digits.classes,
    { l2: 1e-3, maxIterations: 500, tolerance: 1e-5 },
  );
  const onnx = exportOnnx(model, { version: '1', category: 'digits' });
  const { record } = await ledger.publishVersion({
    category: 'digits',
    version,
    createdAt: NOW - 1000,
    onnx: Buffer.from(onnx),
    onnxUri: null,
    modelSha256: modelSha256(onnx),
    featureNames: digits.featureNames,
    classes: digits.classes,
    metrics: {},
    trainingSnapshot: null,
    trainer: 'external',
  });
  return record;
}

/** A ledger that serves nothing and keeps what is published (for determinism checks). */
function recordingLedger(): LedgerPort & { published: NewModelVersion[] } {
  const published: NewModelVersion[] = [];
  return { published, latest: () => Promise.resolve(undefined), publishVersion: (v) => Promise.resolve(published.push(v)) };
}

describe('trainer: the promotion gate', () => {
  it('promotes a candidate trained on the snapshot over a weak serving model, with its metrics and snapshot in the ledger', async () => {
    const f = await fixture();
    const serving = await publishServing(f.ledger, Array.from({ length: 30 }, (_, i) => i));
    const offsets = f.appendDigits(ALL());
    const trigger = f.trigger(offsets, digits.rows.length);

    const outcome = await trainOnTrigger(trigger, { log: f.trainerLog, writerSchema: f.lookup, ledger: f.ledger, settings: SETTINGS, now: () => NOW });
    const d = outcome.decision;
    expect(d).toMatchObject({ decision: 'promoted', reason: 'candidate-better', candidateVersion: '2', servingVersion: '1', sampleCount: 1797, skippedSamples: 0 });
    expect(d.trainSize + d.holdoutSize).toBe(1797);
    expect(d.holdoutSize).toBeGreaterThan(300);
    expect(d.holdoutSize).toBeLessThan(420);
    expect(d.candidateAccuracy).toBeGreaterThan(0.93);
    expect(d.servingAccuracy).toBeLessThan(0.85);
    expect(d.candidateAccuracy as number).toBeGreaterThan(d.servingAccuracy as number);

    const latest = (await f.ledger.latest('digits')) as ModelVersion;
    expect(latest).toMatchObject({
      category: 'digits',
      version: '2',
      sequence: 2,
      prevRecordHash: serving.recordHash,
      trainer: TRAINER_ID,
      modelSha256: d.candidateSha256,
      featureNames: digits.featureNames,
      classes: digits.classes,
      trainingSnapshot: { topic: 'samples', offsets, sampleCount: 1797 },
      createdAt: NOW,
    });
    expect(latest.metrics).toMatchObject({ holdoutAccuracy: d.candidateAccuracy, servingHoldoutAccuracy: d.servingAccuracy, holdoutSize: d.holdoutSize, trainSize: d.trainSize });
    expect(modelSha256(latest.onnx as Buffer)).toBe(d.candidateSha256);
  });

  it('does NOT promote a candidate from a tiny snapshot over a serving model trained on all the data', async () => {
    const f = await fixture(1);
    const serving = await publishServing(f.ledger, ALL());
    f.appendDigits(ALL());
    const trigger = f.trigger([{ partition: 0, offset: 150 }], 150);

    const { decision: d, onnx } = await trainOnTrigger(trigger, { log: f.trainerLog, writerSchema: f.lookup, ledger: f.ledger, settings: SETTINGS, now: () => NOW });
    expect(d).toMatchObject({ decision: 'rejected', reason: 'candidate-not-better', sampleCount: 150 });
    expect(d.servingAccuracy).toBeGreaterThan(0.95);
    expect(d.candidateAccuracy as number).toBeLessThan(d.servingAccuracy as number);
    expect(onnx).toBeInstanceOf(Uint8Array);
    const latest = await f.ledger.latest('digits');
    expect(latest?.recordHash).toBe(serving.recordHash);
  });

  it('promotes the first version of a category (nothing to compare with)', async () => {
    const f = await fixture();
    const offsets = f.appendDigits(ALL().slice(0, 400));
    const { decision: d } = await trainOnTrigger(f.trigger(offsets, 400), { log: f.trainerLog, writerSchema: f.lookup, ledger: f.ledger, settings: SETTINGS, now: () => NOW });
    expect(d).toMatchObject({ decision: 'promoted', reason: 'no-serving-version', candidateVersion: '1', servingAccuracy: null });
    expect((await f.ledger.latest('digits'))?.metrics.servingHoldoutAccuracy).toBeUndefined();
  });

  it('skips a snapshot too small to train or evaluate on', async () => {
    const f = await fixture();
    const offsets = f.appendDigits([0, 1, 2, 3, 4]);
    const { decision: d } = await trainOnTrigger(f.trigger(offsets, 5), { log: f.trainerLog, writerSchema: f.lookup, ledger: f.ledger, settings: SETTINGS });
    expect(d).toMatchObject({ decision: 'skipped', reason: 'too-few-samples', sampleCount: 5 });
    expect(await f.ledger.latest('digits')).toBeUndefined();
  });
});

describe('trainer: a trigger whose serving version was replaced', () => {
  it('skips (superseded) a trigger judged on a version an external trainer has replaced since, and publishes nothing', async () => {
    const f = await fixture();
    await publishServing(f.ledger, Array.from({ length: 30 }, (_, i) => i)); // "1": the version the trigger judged
    const offsets = f.appendDigits(ALL().slice(0, 600));
    const trigger = f.trigger(offsets, 600); // servingVersion "1"
    const external = await publishServing(f.ledger, Array.from({ length: 40 }, (_, i) => i), 'bank-2'); // the external trainer answered it
    const { decision, onnx } = await trainOnTrigger(trigger, { log: f.trainerLog, writerSchema: f.lookup, ledger: f.ledger, settings: SETTINGS, now: () => NOW });
    expect(decision).toMatchObject({ decision: 'skipped', reason: 'superseded', servingVersion: 'bank-2', candidateSha256: '', sampleCount: 0 });
    expect(decision.message).toContain('the trigger judged version "1" but version bank-2 has been published since');
    expect(onnx).toBeUndefined();
    expect(await f.ledger.latest('digits')).toMatchObject({ version: 'bank-2', recordHash: external.recordHash });
    expect(await f.ledger.versions('digits')).toEqual(['1', 'bank-2']);
  });
});

describe('trainer: determinism and the holdout', () => {
  it('same snapshot → same ONNX bytes, also when the samples sit in other partitions in another order', async () => {
    const a = await fixture(2);
    const offsetsA = a.appendDigits(ALL().slice(0, 600));
    const ledgerA = recordingLedger();
    const first = await trainOnTrigger(a.trigger(offsetsA, 600), { log: a.trainerLog, writerSchema: a.lookup, ledger: ledgerA, settings: SETTINGS, now: () => NOW });
    const again = await trainOnTrigger(a.trigger(offsetsA, 600), { log: a.trainerLog, writerSchema: a.lookup, ledger: ledgerA, settings: SETTINGS, now: () => NOW });

    const b = await fixture(3);
    const offsetsB = b.appendDigits(ALL().slice(0, 600).reverse());
    const ledgerB = recordingLedger();
    const other = await trainOnTrigger(b.trigger(offsetsB, 600), { log: b.trainerLog, writerSchema: b.lookup, ledger: ledgerB, settings: SETTINGS, now: () => NOW });

    expect(first.decision.decision).toBe('promoted');
    expect(Buffer.from(first.onnx as Uint8Array).equals(Buffer.from(again.onnx as Uint8Array))).toBe(true);
    expect(Buffer.from(first.onnx as Uint8Array).equals(Buffer.from(other.onnx as Uint8Array))).toBe(true);
    expect(ledgerA.published.map((v) => v.modelSha256)).toEqual([first.decision.candidateSha256, first.decision.candidateSha256]);
    expect(ledgerB.published[0]?.modelSha256).toBe(first.decision.candidateSha256);
  });

  it('holdout and training sets are disjoint, stratified per class by request-ID hash, and the candidate is trained on the training set alone', async () => {
    const f = await fixture();
    const offsets = f.appendDigits(ALL().slice(0, 500));
    const samples = await readSnapshotSamples(f.trainerLog, f.lookup, { topic: 'samples', offsets }, 'digits');
    const set = buildTrainingSet(samples);
    const { train, holdout } = splitHoldout(set.rows, 0.2);
    const trainIds = new Set(train.map((r) => r.requestId));
    expect(holdout.some((r) => trainIds.has(r.requestId))).toBe(false);
    expect(train.length + holdout.length).toBe(500);
    for (const label of set.classes) {
      const ofClass = set.rows.filter((r) => r.label === label);
      const held = holdout.filter((r) => r.label === label);
      // each class held out in its share, and the held-out rows are the class's lowest hash positions
      expect(held.length).toBe(Math.round(ofClass.length * 0.2));
      const positions = ofClass.map((r) => holdoutPosition(r.requestId)).sort((a, b) => a - b);
      expect(held.map((r) => holdoutPosition(r.requestId)).sort((a, b) => a - b)).toEqual(positions.slice(0, held.length));
    }

    const ledger = recordingLedger();
    const { decision, onnx } = await trainOnTrigger(f.trigger(offsets, 500), { log: f.trainerLog, writerSchema: f.lookup, ledger, settings: SETTINGS, now: () => NOW });
    expect(decision).toMatchObject({ trainSize: train.length, holdoutSize: holdout.length });
    const expected = exportOnnx(
      trainLogistic(train.map((r) => ({ features: r.vector, label: r.label })), set.featureNames, set.classes, { l2: SETTINGS.l2, maxIterations: SETTINGS.maxIterations, tolerance: SETTINGS.tolerance }),
      { version: '1', category: 'digits' },
    );
    expect(modelSha256(onnx as Uint8Array)).toBe(modelSha256(expected));
  });
  it('labels the candidate <sequence>.1 when a version published by hand already uses the label <sequence> (it failed "already has a version")', async () => {
    const f = await fixture();
    const serving = await publishServing(f.ledger, Array.from({ length: 30 }, (_, i) => i), '2'); // sequence 1, labelled "2"
    expect(serving.sequence).toBe(1);
    const offsets = f.appendDigits(ALL().slice(0, 600));
    const { decision } = await trainOnTrigger({ ...f.trigger(offsets, 600), servingVersion: '2' }, { log: f.trainerLog, writerSchema: f.lookup, ledger: f.ledger, settings: SETTINGS, now: () => NOW });
    expect(decision).toMatchObject({ decision: 'promoted', candidateVersion: '2.1', servingVersion: '2' });
    expect(await f.ledger.latest('digits')).toMatchObject({ version: '2.1', sequence: 2, prevRecordHash: serving.recordHash });
    expect(await f.ledger.versions('digits')).toEqual(['2', '2.1']);
  });
});

describe('trainer: reading a snapshot', () => {
  it('keeps the highest revision per request, and only the category\'s samples before the snapshot offsets', async () => {
    const f = await fixture(1);
    f.appendDigits([0, 1, 2]);
    f.appendDigits([1], () => ({ revision: 1, label: 'relabelled', labelSource: 'CORRECTED' }));
    f.appendDigits([2], () => ({ revision: 0, label: 'stale duplicate' }));
    f.appendDigits([3], () => ({ category: 'other' }));
    const snapshot = { topic: 'samples', offsets: f.endOffsets() };
    f.appendDigits([4]);
    f.appendDigits([0], () => ({ revision: 5, label: 'after the snapshot' }));

    const samples = await readSnapshotSamples(f.trainerLog, f.lookup, snapshot, 'digits');
    expect(samples.map((s) => [s.requestId, s.revision, s.label])).toEqual([
      ['digit-0', 0, (digits.rows[0] as Dataset['rows'][number]).label],
      ['digit-1', 1, 'relabelled'],
      ['digit-2', 0, 'stale duplicate'],
    ]);
  });

  it('orders features and classes naturally and skips samples without every feature', () => {
    expect(['px10', 'px2', 'px1', 'b', 'a10', 'a9'].sort(naturalCompare)).toEqual(['a9', 'a10', 'b', 'px1', 'px2', 'px10']);
    const base = { attributes: {}, labelSource: 'CONFIRMED', predictedLabel: '', modelVersion: '', requestTimestamp: 0, feedbackTimestamp: null, revision: 0, origin: 'online' } as const;
    const set = buildTrainingSet([
      { ...base, requestId: 'a', category: 'c', features: { f10: 1, f2: 2 }, label: '10' },
      { ...base, requestId: 'b', category: 'c', features: { f2: 3 }, label: '9' },
      { ...base, requestId: 'c', category: 'c', features: { f10: 4, f2: 5 }, label: '9' },
    ]);
    expect(set).toEqual({
      featureNames: ['f2', 'f10'],
      classes: ['9', '10'],
      rows: [
        { requestId: 'a', features: { f10: 1, f2: 2 }, vector: [2, 1], label: '10' },
        { requestId: 'c', features: { f10: 4, f2: 5 }, vector: [5, 4], label: '9' },
      ],
      skipped: 1,
    });
  });
  it('leaves out a feature key only a minority of samples carry instead of skipping every sample without it', () => {
    const base = { attributes: {}, labelSource: 'CONFIRMED', predictedLabel: '', modelVersion: '', requestTimestamp: 0, feedbackTimestamp: null, revision: 0, origin: 'online', category: 'c' } as const;
    const samples = Array.from({ length: 5 }, (_, i) => ({ ...base, requestId: `r${i}`, features: { amount: i, risk: 10 + i, ...(i === 3 ? { debugLatencyMs: 12 } : {}) }, label: i % 2 === 0 ? 'legit' : 'fraud' }));
    const set = buildTrainingSet(samples, ['legit', 'fraud']);
    expect(set.featureNames).toEqual(['amount', 'risk']);
    expect(set.skipped).toBe(0);
    expect(set.rows.map((r) => r.vector)).toEqual([[0, 10], [1, 11], [2, 12], [3, 13], [4, 14]]);
    // a key most samples carry is a column; the few samples without it are skipped
    const newFeature = buildTrainingSet(samples.map((s, i) => ({ ...s, features: i < 3 ? { ...s.features, merchantAge: i } : s.features })), ['legit', 'fraud']);
    expect(newFeature.featureNames).toEqual(['amount', 'merchantAge', 'risk']);
    expect(newFeature.skipped).toBe(2);
    // with a serving version its features are the columns, in its order: a promoted version accepts
    // exactly the requests the serving one does, whatever most samples carry
    const serving = buildTrainingSet(samples.map((s, i) => ({ ...s, features: i < 3 ? { ...s.features, merchantAge: i } : s.features })), ['legit', 'fraud'], ['risk', 'amount']);
    expect(serving.featureNames).toEqual(['risk', 'amount']);
    expect(serving.skipped).toBe(0);
    expect(serving.rows.map((r) => r.vector)).toEqual([[10, 0], [11, 1], [12, 2], [13, 3], [14, 4]]);
  });
});

describe('trainer job: consuming retrain-triggers', () => {
  it('handles waiting triggers once, supersedes older ones of a category, logs progress and writes decisions', async () => {
    const f = await fixture();
    await publishServing(f.ledger, Array.from({ length: 30 }, (_, i) => i));
    const early = f.appendDigits(ALL().slice(0, 300));
    const late = f.appendDigits(ALL().slice(300, 900));
    f.appendTrigger(f.trigger(early, 300, 'digits-1-1'));
    f.appendTrigger(f.trigger(late, 900, 'digits-1-2'));

    const lines: string[] = [];
    const progress: TrainerProgress[] = [];
    const metrics = new EngineMetrics();
    const job = new TrainerJob({
      log: f.trainerLog,
      writerSchema: f.lookup,
      ledger: f.ledger,
      settings: SETTINGS,
      topics: { triggers: 'retrain-triggers', decisions: 'trainer-decisions' },
      applicationId: 'test',
      logger: pino({ level: 'info' }, { write: (line: string) => lines.push(line) }),
      metrics,
      now: () => NOW,
      onProgress: (p) => progress.push(p),
    });

    const decisions = await job.processPending();
    expect(decisions.map((d) => [d.triggerId, d.decision, d.reason])).toEqual([
      ['digits-1-1', 'skipped', 'superseded'],
      ['digits-1-2', 'promoted', 'candidate-better'],
    ]);
    expect(await job.processPending()).toEqual([]);
    expect(f.log.committedOffset('test.trainer', 'retrain-triggers', 0)).toBe(2);

    const written = (await directAccess(f.log, f.registry).read('trainer-decisions')).map((r) => r.value as TrainerDecision);
    expect(written.map((d) => d.decision)).toEqual(['skipped', 'promoted']);
    expect(written[1]).toEqual(JSON.parse(JSON.stringify(decisions[1])));
    expect((await f.ledger.latest('digits'))?.trainingSnapshot?.offsets).toEqual(late);

    const training = progress.filter((p): p is Extract<TrainerProgress, { phase: 'training' }> => p.phase === 'training');
    expect(training.length).toBeGreaterThan(5);
    expect(training.map((p) => p.iteration)).toEqual(training.map((_, i) => i + 1));
    expect((training.at(-1) as { loss: number }).loss).toBeLessThan(training[0]?.loss as number);
    expect(progress.map((p) => p.phase).filter((p) => p !== 'training')).toEqual(['reading', 'evaluating', 'decided']);
    const iterationLogs = lines.map((l) => JSON.parse(l) as { msg: string; iteration?: number; loss?: number }).filter((l) => l.msg === 'trainer: iteration');
    expect(iterationLogs[0]).toMatchObject({ iteration: 1 });
    expect(iterationLogs.slice(1).every((l) => (l.iteration as number) % 10 === 0 && typeof l.loss === 'number')).toBe(true);
    expect(await metrics.total('events', { processor: 'trainer-job', event: 'promoted' })).toBe(1);
    expect(await metrics.total('events', { processor: 'trainer-job', event: 'skipped' })).toBe(1);
  });

  it('handling a trigger again after a crash does not publish twice (already-trained)', async () => {
    const f = await fixture();
    const offsets = f.appendDigits(ALL().slice(0, 400));
    f.appendTrigger(f.trigger(offsets, 400));
    const options = { log: f.trainerLog, writerSchema: f.lookup, ledger: f.ledger, settings: SETTINGS, topics: { triggers: 'retrain-triggers', decisions: null }, applicationId: 'test', now: () => NOW };
    expect((await new TrainerJob(options).processPending()).map((d) => d.decision)).toEqual(['promoted']);
    // As if the offset commit had been lost: another group re-reads the same trigger.
    expect((await new TrainerJob({ ...options, applicationId: 'again' }).processPending()).map((d) => d.reason)).toEqual(['already-trained']);
    expect((await f.ledger.latest('digits'))?.sequence).toBe(1);
  });
});

describe('trainer job: failures', () => {
  it('decides "failed" for a trigger it cannot train on, commits past it and handles the next one', async () => {
    const f = await fixture();
    const offsets = f.appendDigits(ALL().slice(0, 300));
    f.appendTrigger({ ...f.trigger(offsets, 300, 'broken-1-1'), category: 'broken', snapshot: { topic: 'no-such-topic', offsets, sampleCount: 300 } });
    f.log.append([{ topic: 'retrain-triggers', key: Buffer.from('x'), value: Buffer.from('not a trigger'), timestamp: NOW, headers: {} }]);
    f.appendTrigger(f.trigger(offsets, 300));
    const metrics = new EngineMetrics();
    const job = new TrainerJob({ log: f.trainerLog, writerSchema: f.lookup, ledger: f.ledger, settings: SETTINGS, topics: { triggers: 'retrain-triggers', decisions: null }, applicationId: 'test', metrics, now: () => NOW });
    const decisions = await job.processPending();
    expect(decisions.map((d) => [d.triggerId, d.decision, d.reason])).toEqual([
      ['broken-1-1', 'failed', 'error'],
      ['digits-1-1', 'promoted', 'no-serving-version'],
    ]);
    expect(decisions[0]?.message).toContain('no-such-topic');
    expect(f.log.committedOffset('test.trainer', 'retrain-triggers', 0)).toBe(3);
    expect(await metrics.total('events', { processor: 'trainer-job', event: 'undecodable-trigger' })).toBe(1);
  });
});

describe('trainer job: the polling loop', () => {
  it('picks up a trigger appended while it runs, and stop() ends it', async () => {
    const f = await fixture();
    const offsets = f.appendDigits(ALL().slice(0, 400));
    const job = new TrainerJob({ log: f.trainerLog, writerSchema: f.lookup, ledger: f.ledger, settings: SETTINGS, topics: { triggers: 'retrain-triggers', decisions: 'trainer-decisions' }, applicationId: 'test', now: () => NOW });
    const loop = startTrainerLoop(job);
    await new Promise((resolve) => setTimeout(resolve, 100));
    f.appendTrigger(f.trigger(offsets, 400));
    const deadline = Date.now() + 20_000;
    while (f.log.committedOffset('test.trainer', 'retrain-triggers', 0) !== 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    await loop.stop();
    expect((await f.ledger.latest('digits'))?.trainingSnapshot?.offsets).toEqual(offsets);
    expect((await directAccess(f.log, f.registry).read('trainer-decisions')).map((r) => (r.value as TrainerDecision).decision)).toEqual(['promoted']);
  });
});

describe('trigger → trainer → ledger inside startEmbeddedApp', () => {
  it('the trigger fires on samples, the trainer promotes, and the trigger learns the new version from the models topic', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sampleloop-loop-'));
    const clock = { now: NOW };
    const config = parseConfig({
      dataDir: dir,
      log: { level: 'silent' },
      privacy: { alwaysSensitive: [] },
      trigger: { enabled: true, minNewSamples: 500, minFirstVersionSamples: 500, maxFeaturePsi: null },
      trainer: { enabled: true, minTrainSamples: 20, minHoldoutSamples: 10 },
    });
    const app: EmbeddedApp = await startEmbeddedApp(config, { logger: silentLogger(), metrics: new EngineMetrics(), now: () => clock.now, trainer: { loop: false } });
    cleanups.push(async () => {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const sampleId = app.serdes.schemaId('samples') as number;
    const append = (indices: number[]): void => {
      app.log.append(
        indices.map((i) => {
          const row = digits.rows[i] as Dataset['rows'][number];
          const sample: LabeledSample = {
            requestId: `digit-${i}`,
            category: 'digits',
            features: Object.fromEntries(digits.featureNames.map((n, j) => [n, row.features[j] as number])),
            attributes: {},
            label: row.label,
            labelSource: 'CONFIRMED',
            predictedLabel: row.label,
            modelVersion: '',
            requestTimestamp: NOW,
            feedbackTimestamp: NOW,
            revision: 0,
            origin: 'online',
          };
          return { topic: 'samples', key: Buffer.from(sample.requestId), value: encodeFramed('LabeledSample', sampleId, sample), timestamp: NOW, headers: {} };
        }),
      );
    };
    const pump = (): void => {
      for (let i = 0; i < 10 && app.runtime.runUntilIdle() > 0; i++);
    };

    append(ALL().slice(0, 499));
    pump();
    expect(await app.trainer?.processPending()).toEqual([]);
    append([499]);
    pump();
    const [decision] = (await app.trainer?.processPending()) ?? [];
    expect(decision).toMatchObject({ triggerId: 'digits-none-1', decision: 'promoted', reason: 'no-serving-version', sampleCount: 500 });
    expect((await directAccess(app.log, app.registry).read('retrain-triggers'))[0]?.value).toMatchObject({ reason: 'first-version' });

    const access = directAccess(app.log, app.registry);
    const [trigger] = (await access.read('retrain-triggers')).map((r) => r.value as RetrainTrigger);
    const latest = await ledgerClient(access, 'models').latest('digits');
    expect(latest).toMatchObject({ version: '1', sequence: 1, trainer: TRAINER_ID, trainingSnapshot: { topic: 'samples', offsets: trigger?.snapshot.offsets, sampleCount: 500 } });

    // The trigger now knows version 1 serves digits: its count starts over.
    pump();
    append(ALL().slice(500, 999));
    pump();
    expect((await access.read('retrain-triggers')).length).toBe(1);
    append([999]);
    pump();
    const triggers = (await access.read('retrain-triggers')).map((r) => r.value as RetrainTrigger);
    expect(triggers.map((t) => [t.triggerId, t.servingVersion, t.details.newSamples, t.snapshot.sampleCount])).toEqual([
      ['digits-none-1', '', 500, 500],
      ['digits-1-1', '1', 500, 1000],
    ]);
  });

  it('takes a category\'s first version by itself: replayed samples, no serving version, default settings', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sampleloop-trainer-first-'));
    const config = parseConfig({ dataDir: dir, log: { level: 'silent' }, privacy: { alwaysSensitive: [] }, trigger: { enabled: true }, trainer: { enabled: true } });
    const app: EmbeddedApp = await startEmbeddedApp(config, { logger: silentLogger(), metrics: new EngineMetrics(), now: () => NOW, trainer: { loop: false } });
    cleanups.push(async () => {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const sampleId = app.serdes.schemaId('samples') as number;
    const append = (indices: number[]): void => {
      app.log.append(
        indices.map((i) => {
          const row = digits.rows[i] as Dataset['rows'][number];
          const sample: LabeledSample = {
            requestId: `replayed-${i}`,
            category: 'digits',
            features: Object.fromEntries(digits.featureNames.map((n, j) => [n, row.features[j] as number])),
            attributes: {},
            label: row.label,
            labelSource: 'CONFIRMED',
            predictedLabel: row.label,
            modelVersion: '',
            requestTimestamp: NOW,
            feedbackTimestamp: NOW,
            revision: 0,
            origin: 'replay',
          };
          return { topic: 'samples', key: Buffer.from(sample.requestId), value: encodeFramed('LabeledSample', sampleId, sample), timestamp: NOW, headers: {} };
        }),
      );
    };
    const pump = (): void => {
      for (let i = 0; i < 10 && app.runtime.runUntilIdle() > 0; i++);
    };
    // defaults: minTrainSamples 50, minHoldoutSamples 20 at holdoutFraction 0.2 → 110 samples
    append(ALL().slice(0, 109));
    pump();
    expect(await app.trainer?.processPending()).toEqual([]);
    append([109]);
    pump();
    const [decision] = (await app.trainer?.processPending()) ?? [];
    expect(decision).toMatchObject({ triggerId: 'digits-none-1', decision: 'promoted', reason: 'no-serving-version', candidateVersion: '1', sampleCount: 110, gate: null });
    expect(decision?.holdoutSize).toBeGreaterThanOrEqual(20);
    expect(decision?.trainSize).toBeGreaterThanOrEqual(50);
    expect(decision?.publishedTrainSize).toBe(110); // refitOnAll (default): v1 learns from every sample
    const access = directAccess(app.log, app.registry);
    const latest = await ledgerClient(access, 'models').latest('digits');
    expect(latest).toMatchObject({ version: '1', sequence: 1, trainer: TRAINER_ID, modelSha256: decision?.publishedSha256, trainingSnapshot: { sampleCount: 110 } });
    expect(latest?.metrics).toMatchObject({ refitOnAll: 1, publishedTrainSize: 110, holdoutSize: decision?.holdoutSize });
    expect(decision?.publishedSha256).not.toBe(decision?.candidateSha256);
  });
});
