/**
 * A dataset shipped in the repo replayed as samples with label noise, through the real trainer
 * (`trainOnTrigger`) and the real model ledger on an embedded log: a seed model serves first, then a
 * trigger fires every `batch` samples. Every promoted version is scored on a fixed test set that no
 * model trains on (about 25% of the rows, chosen by a hash of the row index).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { directAccess } from '../../access/embedded.js';
import { EmbeddedLog } from '../../engine/embedded/log.js';
import { loadDataset, type Dataset, type DatasetName } from '../../models/datasets/index.js';
import { holdoutPosition } from '../../models/holdout.js';
import { ledgerClient } from '../../models/ledger.js';
import { trainLogistic } from '../../models/logistic-regression.js';
import { exportOnnx, modelSha256 } from '../../models/onnx-export.js';
import { embeddedTrainerLog, onnxHoldoutAccuracy, trainOnTrigger, versionOnnxBytes, type TrainerSettings, type TrainingRow } from '../../models/trainer-job.js';
import { encodeFramed } from '../../schemas/codec.js';
import { LocalSchemaRegistry } from '../../schemas/registry.js';
import { rocksRegistryStorage } from '../../schemas/registry-storage.js';
import type { LabeledSample } from '../../schemas/types.js';
import { registerOutputSchemas } from '../../topologies/serde.js';
import { mulberry32 } from '../reference/traffic.js';

export interface NoisyReplayOptions {
  dataset: DatasetName;
  seeds: number;
  /** Runs these seeds instead of 1..seeds. */
  seedList?: number[];
  /** Share of samples whose label is replaced by another class. */
  labelNoise: number;
  seedRows: number;
  batch: number;
  settings: TrainerSettings;
}

export interface Promotion {
  seed: number;
  version: string;
  samples: number;
  /** Test-set accuracy of the version it replaced, and its own. */
  before: number;
  after: number;
  /** Test-set accuracy of the candidate the gate judged (before a refit on every sample). */
  gated: number;
  pValue: number | null;
  holdoutSize: number;
}

export interface NoisyReplayResult {
  testRows: number;
  promotions: Promotion[];
  rejections: number;
  /** Per seed: test-set accuracy of the seed model and of the version serving at the end. */
  finals: Array<{ seed: number; seedAccuracy: number; finalAccuracy: number }>;
}

export async function runNoisyReplay(options: NoisyReplayOptions): Promise<NoisyReplayResult> {
  const data: Dataset = loadDataset(options.dataset);
  const rowsOf = (indices: readonly number[], prefix: string): TrainingRow[] =>
    indices.map((i) => {
      const row = data.rows[i] as Dataset['rows'][number];
      const features: Record<string, number> = {};
      data.featureNames.forEach((name, j) => (features[name] = row.features[j] as number));
      return { requestId: `${prefix}${i}`, features, vector: row.features, label: row.label };
    });
  const all = data.rows.map((_, i) => i);
  const testIndices = all.filter((i) => holdoutPosition(`test-row-${i}`) < 0.25);
  const poolIndices = all.filter((i) => holdoutPosition(`test-row-${i}`) >= 0.25);
  const testRows = rowsOf(testIndices, 'test-');
  const testAccuracy = (onnx: Uint8Array): Promise<number> => onnxHoldoutAccuracy(onnx, testRows);

  const dir = mkdtempSync(join(tmpdir(), 'sampleloop-noisy-replay-'));
  const log = await EmbeddedLog.open(dir);
  try {
    const registry = new LocalSchemaRegistry(rocksRegistryStorage(log.db));
    const serdes = await registerOutputSchemas(registry, [{ topic: 'samples', schema: 'LabeledSample' }]);
    const sampleSchema = serdes.schemaId('samples') as number;
    log.ensureTopic('samples', { partitions: 1, compact: true });
    const trainerLog = embeddedTrainerLog(log);
    const clock = { now: 1_800_000_000_000 };
    const ledger = ledgerClient(directAccess(log, registry, () => clock.now), 'models');
    const result: NoisyReplayResult = { testRows: testRows.length, promotions: [], rejections: 0, finals: [] };

    for (const seed of options.seedList ?? Array.from({ length: options.seeds }, (_, i) => i + 1)) {
      const category = `${options.dataset}-${seed}`;
      const random = mulberry32(seed);
      const order = [...poolIndices];
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [order[i], order[j]] = [order[j] as number, order[i] as number];
      }
      const noisyLabel = (label: string): string => {
        if (random() >= options.labelNoise) return label;
        const others = data.classes.filter((c) => c !== label);
        return others[Math.floor(random() * others.length)] as string;
      };
      const seedRows = order.slice(0, options.seedRows);
      const traffic = order.slice(options.seedRows);

      const seedModel = exportOnnx(
        trainLogistic(seedRows.map((i) => ({ ...(data.rows[i] as Dataset['rows'][number]) })), data.featureNames, data.classes, { l2: 1e-3, maxIterations: 500, tolerance: 1e-5 }),
        { version: '1', category },
      );
      await ledger.publishVersion({
        category,
        version: '1',
        createdAt: clock.now,
        onnx: Buffer.from(seedModel),
        onnxUri: null,
        modelSha256: modelSha256(seedModel),
        featureNames: data.featureNames,
        classes: data.classes,
        metrics: {},
        trainingSnapshot: null,
        trainer: 'seed',
      });
      const seedAccuracy = await testAccuracy(seedModel);
      let servingAccuracy = seedAccuracy;

      for (let start = 0; start < traffic.length; start += options.batch) {
        const batch = rowsOf(traffic.slice(start, start + options.batch), `${category}-req-`);
        clock.now += 60_000;
        log.append(
          batch.map((row) => {
            const label = noisyLabel(row.label);
            const sample: LabeledSample = {
              requestId: row.requestId,
              category,
              features: row.features,
              attributes: {},
              label,
              labelSource: 'CONFIRMED',
              predictedLabel: label,
              modelVersion: '',
              requestTimestamp: clock.now,
              feedbackTimestamp: clock.now,
              revision: 0,
              origin: 'replay',
            };
            return { topic: 'samples', key: Buffer.from(sample.requestId), value: encodeFramed('LabeledSample', sampleSchema, sample), timestamp: clock.now, headers: {} };
          }),
        );
        const serving = await ledger.latest(category);
        const sampleCount = Math.min(traffic.length, start + options.batch);
        const { decision, onnx } = await trainOnTrigger(
          {
            triggerId: `${category}-${serving?.version ?? 'none'}-${start}`,
            category,
            reason: 'sample-count',
            details: {},
            servingVersion: serving?.version ?? '',
            snapshot: { topic: 'samples', offsets: [{ partition: 0, offset: log.endOffset('samples', 0) }], sampleCount },
            createdAt: clock.now,
          },
          { log: trainerLog, writerSchema: (id) => registry.cached(id), ledger, settings: options.settings, now: () => clock.now },
        );
        if (decision.decision === 'rejected') result.rejections++;
        if (decision.decision !== 'promoted') continue;
        const promoted = await ledger.latest(category);
        const after = await testAccuracy(versionOnnxBytes(promoted as NonNullable<typeof promoted>));
        result.promotions.push({
          seed,
          version: decision.candidateVersion,
          samples: sampleCount,
          before: servingAccuracy,
          after,
          gated: onnx ? await testAccuracy(onnx) : after,
          pValue: decision.gate?.pValue ?? null,
          holdoutSize: decision.holdoutSize,
        });
        servingAccuracy = after;
      }
      result.finals.push({ seed, seedAccuracy, finalAccuracy: servingAccuracy });
    }
    return result;
  } finally {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
