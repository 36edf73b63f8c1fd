/**
 * `export samples` and `models train --from samples` in mode "kafka": the samples topic of a real
 * broker (2 partitions, Avro through the registry), the latest revisions and a trigger's snapshot.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { kafkaAccess } from '../../access/kafka.js';
import { librdkafkaSettings } from '../../app/kafka.js';
import { parseConfig } from '../../config/config.js';
import { silentLogger } from '../../engine/logger.js';
import { loadDataset } from '../../models/datasets/index.js';
import { ConfluentSchemaRegistry } from '../../schemas/confluent-registry.js';
import type { LabeledSample } from '../../schemas/types.js';
import { runCli } from '../helpers/cli-in-process.js';
import { createTestApp, kafkaEndpoints, type TestApp } from './helpers.js';

const endpoints = kafkaEndpoints();
const cancer = loadDataset('breast-cancer');
const FEATURES = cancer.featureNames.slice(0, 4);

function sample(i: number, revision: number): LabeledSample {
  const row = cancer.rows[i]!;
  return {
    requestId: `k-${String(i).padStart(4, '0')}`,
    category: i % 10 === 9 ? 'other' : 'cancer',
    features: Object.fromEntries(FEATURES.map((f, j) => [f, row.features[j] as number])),
    attributes: { channel: 'web' },
    label: revision === 2 ? 'benign' : row.label,
    labelSource: revision === 2 ? 'CORRECTED' : 'CONFIRMED',
    predictedLabel: row.label,
    modelVersion: '1',
    requestTimestamp: 1_750_000_000_000 + i,
    feedbackTimestamp: 1_750_000_000_500 + i,
    revision,
    origin: 'online',
  };
}

describe.skipIf(endpoints === null)('export samples on Kafka', () => {
  const apps: TestApp[] = [];
  afterAll(() => apps.forEach((a) => a.cleanup()));

  it('exports the latest revisions and exactly a snapshot\'s samples from the cluster; trains from them', async () => {
    const app = createTestApp(endpoints!, 'export-samples', 2);
    apps.push(app);
    const configJson = app.config({ instanceId: 'export-1' });
    const configFile = join(app.dir, 'kafka.json');
    writeFileSync(configFile, JSON.stringify(configJson));
    const config = parseConfig(configJson);
    const access = kafkaAccess(librdkafkaSettings(config), new ConfluentSchemaRegistry(config.kafka.schemaRegistry!), silentLogger(), { partitions: 2, replicationFactor: 1 });
    const first = Array.from({ length: 200 }, (_, i) => sample(i, 1));
    await access.produceAvro!(app.topics.samples, 'LabeledSample', first.map((s) => ({ key: s.requestId, value: s, timestamp: s.requestTimestamp })));
    const ends = (await access.topics()).find((t) => t.topic === app.topics.samples)!.endOffsets;
    expect(ends.reduce((a, b) => a + b, 0)).toBe(200);
    const second = Array.from({ length: 30 }, (_, i) => sample(i, 2));
    await access.produceAvro!(app.topics.samples, 'LabeledSample', second.map((s) => ({ key: s.requestId, value: s, timestamp: s.requestTimestamp })));

    const row = (s: LabeledSample): Record<string, unknown> => ({
      requestId: s.requestId, category: s.category, label: s.label, labelSource: s.labelSource, predictedLabel: s.predictedLabel, modelVersion: s.modelVersion,
      origin: s.origin, revision: s.revision, requestTimestamp: s.requestTimestamp, feedbackTimestamp: s.feedbackTimestamp,
      ...s.features, 'attributes.channel': 'web',
    });
    const byId = (a: LabeledSample, b: LabeledSample): number => a.requestId.localeCompare(b.requestId);

    const latestOut = join(app.dir, 'latest.jsonl');
    const latest = await runCli('export', 'samples', '--category', 'cancer', '--out', latestOut, '--config', configFile);
    expect(latest.stderr).toBe('');
    expect(latest.code).toBe(0);
    const expectedLatest = [...second, ...first.slice(30)].filter((s) => s.category === 'cancer').sort(byId);
    expect(readFileSync(latestOut, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual(expectedLatest.map(row));

    const trigger = { triggerId: 'cancer-1-1', category: 'cancer', snapshot: { topic: app.topics.samples, offsets: ends.map((offset, partition) => ({ partition, offset })), sampleCount: 180 } };
    const snapOut = join(app.dir, 'snapshot.jsonl');
    const snap = await runCli('export', 'samples', '--snapshot', JSON.stringify(trigger), '--out', snapOut, '--config', configFile);
    expect(snap.stderr).toBe('');
    expect(snap.code).toBe(0);
    expect(readFileSync(snapOut, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual(first.filter((s) => s.category === 'cancer').sort(byId).map(row));

    const trained = await runCli('models', 'train', '--category', 'cancer', '--from', 'samples', '--dry-run', '--config', configFile);
    expect(trained.code).toBe(0);
    const out = JSON.parse(trained.stdout[0] as string) as { metrics: Record<string, number>; trainingSnapshot: { sampleCount: number; offsets: unknown[] } };
    expect(out.trainingSnapshot.sampleCount).toBe(expectedLatest.length);
    expect(out.metrics.trainSize! + out.metrics.holdoutSize!).toBe(expectedLatest.length);
  }, 240_000);
});
