/**
 * The signed model ledger on a real broker and schema registry: with an explicit trust policy (the
 * trainer's key, configured in every instance), well-formed successors appended to the models topic
 * unsigned, wrongly signed or signed by an untrusted key are refused by the predictor (logged with
 * their reason and counted) while the head keeps serving, `models verify` names each of them, and a
 * version signed by the trusted key is then served.
 */
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { kafkaAccess } from '../../access/kafka.js';
import { main } from '../../cli/main.js';
import { silentLogger } from '../../engine/logger.js';
import { EngineMetrics } from '../../engine/metrics.js';
import { loadDataset } from '../../models/datasets/index.js';
import { buildVersion, loadSigner, publishVersion, signVersion, trustPolicy, versionSigningMessage, writeKeyPair, type NewVersion } from '../../models/ledger.js';
import { trainLogistic } from '../../models/logistic-regression.js';
import { exportOnnx } from '../../models/onnx-export.js';
import { ConfluentSchemaRegistry } from '../../schemas/confluent-registry.js';
import type { ModelVersion, Prediction } from '../../schemas/types.js';
import { connectProducer, createTestApp, disconnect, kafkaEndpoints, produceKeyed, readTopic, startInProcess, waitUntil, type InProcessApp, type TestApp } from './helpers.js';

const endpoints = kafkaEndpoints();
const PARTITIONS = 2;
const T0 = Date.now() - 3600_000;
const digits = loadDataset('digits');

function version(label: string, rows: number): NewVersion {
  const model = trainLogistic(digits.rows.slice(0, rows), digits.featureNames, digits.classes, { l2: 1e-3, maxIterations: 30, tolerance: 1e-5 });
  return { category: 'digits', version: label, onnx: exportOnnx(model, { version: label, category: 'digits' }), featureNames: digits.featureNames, classes: digits.classes, createdAt: Date.now() };
}

describe.skipIf(endpoints === null)('signed model ledger on Kafka', () => {
  const apps: TestApp[] = [];
  const running: InProcessApp[] = [];
  afterAll(async () => {
    for (const r of running) await r.stop().catch(() => undefined);
    apps.forEach((a) => a.cleanup());
  });

  it('refuses unsigned, wrongly signed and untrusted-signer versions appended to the topic; the head keeps serving until a trusted version comes', async () => {
    const kafka = endpoints!;
    const test = createTestApp(kafka, 'ledger-trust', PARTITIONS);
    apps.push(test);
    const trainerKey = writeKeyPair(join(test.dir, 'keys', 'trainer.key'));
    const strangerKey = loadSigner(writeKeyPair(join(test.dir, 'keys', 'stranger.key')).privateKeyFile);
    const models = { signing: { keyFile: trainerKey.privateKeyFile }, trust: { keys: [{ name: 'trainer', publicKey: trainerKey.publicKey, categories: ['*'] }] } };
    const keys = { signer: loadSigner(trainerKey.privateKeyFile), trust: trustPolicy(models.trust.keys) };
    const access = kafkaAccess({ 'bootstrap.servers': kafka.bootstrap }, new ConfluentSchemaRegistry({ url: kafka.registryUrl }), silentLogger(), { partitions: PARTITIONS, replicationFactor: 1 });
    const v1 = (await publishVersion(access, version('1', 200), { topic: test.topics.models, ...keys })).record;

    const metrics = new EngineMetrics();
    const config = { ...test.config({ instanceId: 'ledger-trust-1' }), log: { level: 'info' as const }, predictor: { enabled: true }, models };
    const app = await startInProcess(config, metrics);
    running.push(app);

    const registry = new SchemaRegistry({ host: kafka.registryUrl });
    let sent = 0;
    const sendRequests = async (count: number): Promise<void> => {
      const producer = await connectProducer(kafka.bootstrap);
      try {
        const requests = Array.from({ length: count }, () => {
          const i = sent++;
          const row = digits.rows[i]!;
          const value = { requestId: `lt-${i}`, category: 'digits', features: Object.fromEntries(digits.featureNames.map((f, j) => [f, row.features[j]])), timestamp: T0 + i * 10 };
          return { key: value.requestId, timestamp: value.timestamp, value: Buffer.from(JSON.stringify(value)) };
        });
        await produceKeyed(producer, test.topics.requests, PARTITIONS, requests);
      } finally {
        await disconnect(producer);
      }
    };
    const predictions = async (): Promise<Prediction[]> => {
      const messages = await readTopic(kafka.bootstrap, test.topics.predictions, PARTITIONS, { readCommitted: true }).catch(() => []);
      return Promise.all(messages.map(async (m) => (await registry.decode(m.value as Buffer)) as Prediction));
    };
    const awaitPredictions = async (count: number): Promise<Prediction[]> => {
      let all: Prediction[] = [];
      await Promise.race([app.failed, waitUntil(async () => (all = await predictions()).length >= count, 90_000, `${count} predictions on Kafka`)]);
      return all;
    };

    await sendRequests(10);
    expect((await awaitPredictions(10)).map((p) => p.modelVersion)).toEqual(Array(10).fill('1'));

    // Someone who can write the topic appends well-formed successors of v1 (right chain link and sequence).
    const next = buildVersion(version('2', 600), v1);
    const forged: ModelVersion[] = [
      next,
      { ...next, signer: trainerKey.publicKey, signature: strangerKey.sign(versionSigningMessage(next.recordHash)).toString('base64') },
      signVersion(next, strangerKey),
    ];
    await access.produceAvro?.(test.topics.models, 'ModelVersion', forged.map((value) => ({ key: 'digits', value, timestamp: value.createdAt })));
    const refusals = (): string[] => app.logs.filter((l) => l.msg.startsWith('model version refused')).map((l) => `${String(l.version)}:${String(l.code)}`);
    for (let round = 0; round < 40 && refusals().length < 3; round++) {
      await sendRequests(5);
      await awaitPredictions(sent);
    }
    expect(refusals()).toEqual(['2:unsigned', '2:bad-signature', '2:untrusted-signer']);
    const event = (name: string): Promise<number> => metrics.total('events', { processor: 'predictor', event: name });
    expect([await event('model-refused-unsigned'), await event('model-refused-bad-signature'), await event('model-refused-untrusted-signer')]).toEqual([1, 1, 1]);
    await sendRequests(5);
    const afterForgeries = await awaitPredictions(sent);
    expect(new Set(afterForgeries.map((p) => `${p.modelVersion}:${p.modelHash}`))).toEqual(new Set([`1:${v1.modelSha256}`]));

    // `models verify` against the broker names each refused version with its reason.
    const configFile = join(test.dir, 'sampleloop.json');
    writeFileSync(configFile, JSON.stringify(config));
    const stdout: string[] = [];
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    let code: number;
    try {
      code = await main(['node', 'sampleloop', 'models', 'verify', '-c', configFile], (line) => stdout.push(line));
    } finally {
      stderr.mockRestore();
    }
    expect(code).toBe(1);
    expect(stdout.map((l) => l.replace(/^FAIL digits version 2 \(sequence 2, offset (\d+)\): ([a-z-]+): .*$/, '$1:$2'))).toEqual(['1:unsigned', '2:bad-signature', '3:untrusted-signer']);

    // The trusted key publishes v2, linked to v1: it is served.
    const v2 = (await publishVersion(access, version('2', 600), { topic: test.topics.models, ...keys })).record;
    expect(v2.prevRecordHash).toBe(v1.recordHash);
    let served: Prediction | undefined;
    for (let round = 0; round < 30 && served === undefined; round++) {
      await sendRequests(5);
      served = (await awaitPredictions(sent)).find((p) => p.modelVersion === '2');
    }
    expect(served?.modelHash).toBe(v2.modelSha256);
  }, 300_000);
});
