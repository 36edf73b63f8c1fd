/**
 * The predictor on Kafka: requests are answered by the category's model from the ledger on the
 * `models` topic (read by every instance as a global table), and a version published while the
 * application runs is hot-swapped in: later requests carry the new version.
 */
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { afterAll, describe, expect, it } from 'vitest';
import { kafkaAccess } from '../../access/kafka.js';
import { ConfluentSchemaRegistry } from '../../schemas/confluent-registry.js';
import { silentLogger } from '../../engine/logger.js';
import { loadDataset } from '../../models/datasets/index.js';
import { parseConfig } from '../../config/config.js';
import { ledgerKeysFor, publishVersion } from '../../models/ledger.js';
import { trainLogistic } from '../../models/logistic-regression.js';
import { exportOnnx } from '../../models/onnx-export.js';
import type { Prediction } from '../../schemas/types.js';
import { connectProducer, createTestApp, disconnect, kafkaEndpoints, produceKeyed, readTopic, startInProcess, waitUntil, type InProcessApp, type TestApp } from './helpers.js';

const endpoints = kafkaEndpoints();
const PARTITIONS = 2;
const T0 = Date.now() - 3600_000;
const digits = loadDataset('digits');

describe.skipIf(endpoints === null)('predictor on Kafka', () => {
  const apps: TestApp[] = [];
  const running: InProcessApp[] = [];
  afterAll(async () => {
    for (const r of running) await r.stop().catch(() => undefined);
    apps.forEach((a) => a.cleanup());
  });

  it('answers requests with the ledger version of the category and hot-swaps a version published while it runs', async () => {
    const kafka = endpoints!;
    const test = createTestApp(kafka, 'predictor', PARTITIONS);
    apps.push(test);
    const access = kafkaAccess({ 'bootstrap.servers': kafka.bootstrap }, new ConfluentSchemaRegistry({ url: kafka.registryUrl }), silentLogger(), { partitions: PARTITIONS, replicationFactor: 1 });
    const publish = async (version: string, rows: number): Promise<void> => {
      const model = trainLogistic(digits.rows.slice(0, rows), digits.featureNames, digits.classes, { l2: 1e-3, maxIterations: 30, tolerance: 1e-5 });
      const onnx = exportOnnx(model, { version, category: 'digits' });
      // signed with the key the instances trust by default: the test app's data dir's generated key
      const keys = ledgerKeysFor(parseConfig(test.config({ instanceId: 'predictor-1' })), { generate: true });
      await publishVersion(access, { category: 'digits', version, onnx, featureNames: digits.featureNames, classes: digits.classes, createdAt: Date.now() }, { topic: test.topics.models, ...keys });
    };
    await publish('1', 200);

    const app = await startInProcess({ ...test.config({ instanceId: 'predictor-1' }), log: { level: 'warn' as const }, predictor: { enabled: true } });
    running.push(app);

    const registry = new SchemaRegistry({ host: kafka.registryUrl });
    const sendRequests = async (from: number, count: number): Promise<void> => {
      const producer = await connectProducer(kafka.bootstrap);
      try {
        const requests = Array.from({ length: count }, (_, k) => {
          const i = from + k;
          const row = digits.rows[i]!;
          const value = { requestId: `px-${i}`, category: 'digits', features: Object.fromEntries(digits.featureNames.map((f, j) => [f, row.features[j]])), timestamp: T0 + i * 10 };
          return { key: value.requestId, timestamp: value.timestamp, value: Buffer.from(JSON.stringify(value)) };
        });
        await produceKeyed(producer, test.topics.requests, PARTITIONS, requests);
      } finally {
        await disconnect(producer);
      }
    };
    const predictions = async (count: number): Promise<Map<string, Prediction>> => {
      let byId = new Map<string, Prediction>();
      await Promise.race([
        app.failed,
        waitUntil(
          async () => {
            const messages = await readTopic(kafka.bootstrap, test.topics.predictions, PARTITIONS, { readCommitted: true }).catch(() => []);
            byId = new Map((await Promise.all(messages.map(async (m) => (await registry.decode(m.value as Buffer)) as Prediction))).map((p) => [p.requestId, p]));
            return byId.size >= count;
          },
          90_000,
          `${count} predictions on Kafka`,
        ),
      ]);
      return byId;
    };

    await sendRequests(0, 10);
    const first = await predictions(10);
    expect([...first.values()].map((p) => p.modelVersion)).toEqual(Array(10).fill('1'));
    for (const p of first.values()) expect(digits.classes).toContain(p.predictedLabel);

    await publish('2', 600);
    // The swap is asynchronous (the global table follows the models topic): send until a request gets version 2.
    let next = 10;
    let swapped: Prediction | undefined;
    for (let round = 0; round < 30 && swapped === undefined; round++) {
      await sendRequests(next, 5);
      next += 5;
      const all = await predictions(next);
      swapped = [...all.values()].find((p) => p.modelVersion === '2');
    }
    expect(swapped?.modelVersion).toBe('2');
    expect(swapped?.modelHash).not.toBe(first.get('px-0')?.modelHash);
  }, 240_000);
});
