/**
 * The gateway on a real broker and registry: two instances (each a full `run` of its own: samples
 * topology, model ledger as a global table, gateway on its own HTTP port) answer the same rows with
 * the same labels, scores and version; every answer is on the predictions topic (acks=all) with its
 * request ID; feedback sent through either instance's /v1/feedback joins into samples; a version
 * published while they run is served by both.
 */
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { afterAll, describe, expect, it } from 'vitest';
import { kafkaAccess } from '../../access/kafka.js';
import { kafkaGateway, type Gateway } from '../../app/gateway/index.js';
import { startHttpServer, type HttpServer } from '../../app/http.js';
import { parseConfig } from '../../config/config.js';
import { silentLogger } from '../../engine/logger.js';
import { ledgerKeysFor, publishVersion } from '../../models/ledger.js';
import { ConfluentSchemaRegistry } from '../../schemas/confluent-registry.js';
import type { LabeledSample, Prediction } from '../../schemas/types.js';
import { digits, oipRequest, onnxOf } from '../helpers/gateway-harness.js';
import { createTestApp, kafkaEndpoints, readTopic, startInProcess, waitUntil, type InProcessApp, type TestApp } from './helpers.js';

const endpoints = kafkaEndpoints();
const PARTITIONS = 2;

interface Instance {
  app: InProcessApp;
  gateway: Gateway;
  http: HttpServer;
  url: string;
}

describe.skipIf(endpoints === null)('the gateway on Kafka', () => {
  const apps: TestApp[] = [];
  const instances: Instance[] = [];
  afterAll(async () => {
    for (const i of instances) {
      await i.http.close().catch(() => undefined);
      await i.gateway.close().catch(() => undefined);
      await i.app.stop().catch(() => undefined);
    }
    apps.forEach((a) => a.cleanup());
  });

  it('two stateless instances answer alike, record every answer, and join feedback from either into samples', async () => {
    const kafka = endpoints!;
    const test = createTestApp(kafka, 'gateway', PARTITIONS);
    apps.push(test);
    const access = kafkaAccess({ 'bootstrap.servers': kafka.bootstrap }, new ConfluentSchemaRegistry({ url: kafka.registryUrl }), silentLogger(), { partitions: PARTITIONS, replicationFactor: 1 });
    // signed with the key the instances trust by default: the test app's data dir's generated key
    const keys = ledgerKeysFor(parseConfig(test.config({ instanceId: 'gw-1' })), { generate: true });
    const publish = (version: string, rows: number): Promise<unknown> =>
      publishVersion(access, { category: 'digits', version, onnx: onnxOf(digits, version, rows), featureNames: digits.featureNames, classes: digits.classes, createdAt: Date.now() }, { topic: test.topics.models, ...keys });
    await publish('1', 200);

    for (const instanceId of ['gw-1', 'gw-2']) {
      const input = { ...test.config({ instanceId }), log: { level: 'warn' as const } };
      const app = await startInProcess(input);
      const config = parseConfig(input);
      const gateway = await kafkaGateway({ config, models: app.app.models!, registry: app.app.registry, privacy: app.app.privacy, logger: silentLogger(), metrics: app.app.metrics, ready: () => true, settings: app.app.settings });
      const http = await startHttpServer({ host: '127.0.0.1', port: 0, metrics: app.app.metrics, logger: silentLogger(), routes: { health: () => ({ healthy: true, details: {} }) }, plugins: [gateway.plugin] });
      instances.push({ app, gateway, http, url: `http://127.0.0.1:${http.port}` });
    }
    const infer = async (instance: Instance, body: unknown): Promise<{ status: number; body: { id: string; model_version: string; outputs: Array<{ name: string; data: Array<string | number> }> } }> => {
      const res = await fetch(`${instance.url}/v2/models/digits/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as never };
    };
    for (const instance of instances) {
      await waitUntil(async () => (await fetch(`${instance.url}/v2/models/digits/ready`)).status === 200, 60_000, 'the model on every instance');
    }

    // the same rows through both instances: the same answers, different request IDs
    const rows = Array.from({ length: 20 }, (_, i) => i);
    const [a, b] = await Promise.all(instances.map((i) => infer(i, oipRequest(digits, rows, { requestId: rows.map((r) => `${i.url}-${r}`) }))));
    expect(a!.status).toBe(200);
    expect(b!.status).toBe(200);
    expect(a!.body.model_version).toBe('1');
    expect(b!.body.outputs.find((o) => o.name === 'label')!.data).toEqual(a!.body.outputs.find((o) => o.name === 'label')!.data);
    expect(b!.body.outputs.find((o) => o.name === 'scores')!.data).toEqual(a!.body.outputs.find((o) => o.name === 'scores')!.data);
    const singles = await Promise.all(Array.from({ length: 30 }, (_, i) => infer(instances[i % 2]!, oipRequest(digits, [i]))));
    expect(singles.every((s) => s.status === 200)).toBe(true);

    // every answer is on the predictions topic already (acks=all before the answer)
    const registry = new SchemaRegistry({ host: kafka.registryUrl });
    const decoded = async <T>(topic: string): Promise<T[]> => {
      const messages = await readTopic(kafka.bootstrap, topic, PARTITIONS, { readCommitted: false }).catch(() => []);
      return Promise.all(messages.map(async (m) => (await registry.decode(m.value as Buffer)) as T));
    };
    const answeredIds = [...(a!.body.outputs.find((o) => o.name === 'request_id')!.data as string[]), ...(b!.body.outputs.find((o) => o.name === 'request_id')!.data as string[]), ...singles.map((s) => s.body.id)];
    const recorded = new Map((await decoded<Prediction>(test.topics.predictions)).map((p) => [p.requestId, p]));
    expect(answeredIds.filter((id) => !recorded.has(id))).toEqual([]);
    const labelsA = a!.body.outputs.find((o) => o.name === 'label')!.data;
    rows.forEach((r) => expect(recorded.get(`${instances[0]!.url}-${r}`)).toMatchObject({ category: 'digits', predictedLabel: labelsA[r], modelVersion: '1' }));

    // feedback for instance 1's answers, sent to instance 2, joins into samples
    const truth = (r: number): string => digits.rows[r]!.label;
    const feedback = await fetch(`${instances[1]!.url}/v1/feedback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(rows.slice(0, 5).map((r) => ({ requestId: `${instances[0]!.url}-${r}`, actualLabel: truth(r) }))),
    });
    expect(((await feedback.json()) as { accepted: number }).accepted).toBe(5);
    let samples: LabeledSample[] = [];
    await waitUntil(
      async () => {
        samples = await decoded<LabeledSample>(test.topics.samples);
        return samples.length >= 5;
      },
      90_000,
      '5 samples on Kafka',
    );
    expect(Object.fromEntries(samples.map((s) => [s.requestId, [s.label, s.predictedLabel]]))).toEqual(
      Object.fromEntries(rows.slice(0, 5).map((r) => [`${instances[0]!.url}-${r}`, [truth(r), labelsA[r]]])),
    );

    // a version published while they run: both serve it
    await publish('2', 600);
    for (const instance of instances) {
      await waitUntil(async () => (await infer(instance, oipRequest(digits, [0]))).body.model_version === '2', 60_000, 'version 2 on every instance');
    }
  }, 240_000);
});
