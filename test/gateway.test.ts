/**
 * The gateway (docs/gateway.md) on the embedded engine over real HTTP with real ONNX models: answered
 * predictions are on the predictions topic with the same request ID and join with feedback sent
 * through /v1/feedback into samples; a hot swap mid-traffic; every bad-input class and its code;
 * micro-batching and the bounded queue; privacy of attributes; bearer tokens.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BearerTokens } from '../app/http-auth.js';
import { startHttpServer } from '../app/http.js';
import { isUuidV7, RequestIdGenerator, uuidV7Time } from '../app/gateway/request-id.js';
import { silentLogger } from '../engine/logger.js';
import { EngineMetrics } from '../engine/metrics.js';
import { loadOnnxModel } from '../models/onnx-runtime.js';
import { waitFor } from './helpers/cli-process.js';
import { burst, cancer, digits, oipRequest, onnxOf, startGatewayEngine, type GatewayEngine } from './helpers/gateway-harness.js';

const INFER = '/v2/models/breast-cancer/infer';
const ATTRIBUTES = { name: 'Customer Seventeen', phone: '+44 7700 900123', channel: 'web' };

describe('the gateway (embedded)', () => {
  let engine: GatewayEngine;
  const v1 = onnxOf(cancer, '1', 200);

  beforeAll(async () => {
    engine = await startGatewayEngine({ join: { beforeMs: 60_000, afterMs: 60_000, graceMs: 0 } });
    await engine.publish(cancer, '1', v1);
    await engine.publish(digits, '1');
  });
  afterAll(async () => {
    await engine?.close();
  });

  it('answers one row with the model\'s label and scores, a UUIDv7 request ID and the version, after writing the prediction', async () => {
    const before = Date.now();
    const { status, body } = await engine.post(INFER, oipRequest(cancer, [0], { attributes: ATTRIBUTES }));
    expect(status).toBe(200);
    const id = body.id as string;
    expect(isUuidV7(id)).toBe(true);
    expect(uuidV7Time(id)).toBeGreaterThanOrEqual(before);
    const model = await loadOnnxModel(v1, { featureNames: cancer.featureNames, classes: cancer.classes });
    const [expected] = await model.predictBatch([(cancer.rows[0] as { features: number[] }).features]);
    await model.close();
    expect(body).toEqual({
      model_name: 'breast-cancer',
      model_version: '1',
      id,
      parameters: { requestIds: [id], modelHash: expect.stringMatching(/^[0-9a-f]{64}$/) },
      outputs: [
        { name: 'label', shape: [1], datatype: 'BYTES', data: [expected!.label] },
        { name: 'scores', shape: [1, 2], datatype: 'FP64', data: cancer.classes.map((c) => expected!.scores[c]), parameters: { classes: cancer.classes } },
        { name: 'request_id', shape: [1], datatype: 'BYTES', data: [id] },
      ],
    });
    // recorded before the answer: it is on the topic the moment the answer is read
    const recorded = engine.predictions().find((p) => p.requestId === id);
    expect(recorded).toMatchObject({
      category: 'breast-cancer',
      predictedLabel: expected!.label,
      modelVersion: '1',
      modelHash: (body.parameters as { modelHash: string }).modelHash,
      features: Object.fromEntries(cancer.featureNames.map((n, j) => [n, (cancer.rows[0] as { features: number[] }).features[j]])),
    });
    expect(recorded!.requestTimestamp).toBeGreaterThanOrEqual(before);
    expect(recorded!.timestamp).toBeGreaterThanOrEqual(recorded!.requestTimestamp);
    // the privacy rules applied: name tokenized, phone masked, the rest as given
    expect(recorded!.attributes.name).toMatch(/^tok_/);
    expect(recorded!.attributes.phone).toBe('***********0123');
    expect(recorded!.attributes.channel).toBe('web');
    expect(JSON.stringify(engine.predictions())).not.toContain('Customer Seventeen');
  });

  it('keeps a caller\'s request IDs, answers a batch row by row, and joins feedback from /v1/feedback into samples', async () => {
    const ids = ['caller-a', 'caller-b', 'caller-c'];
    const { status, body } = await engine.post(INFER, oipRequest(cancer, [1, 2, 3], { requestId: ids }));
    expect(status).toBe(200);
    expect(body.id).toBe('caller-a');
    const outputs = body.outputs as Array<{ name: string; data: unknown[]; shape: number[] }>;
    expect(outputs.find((o) => o.name === 'request_id')!.data).toEqual(ids);
    expect(outputs.find((o) => o.name === 'scores')!.shape).toEqual([3, 2]);
    const labels = outputs.find((o) => o.name === 'label')!.data as string[];
    expect(engine.predictions().filter((p) => ids.includes(p.requestId)).map((p) => [p.requestId, p.predictedLabel])).toEqual(ids.map((id, i) => [id, labels[i]]));
    // the OIP `id` is the request ID of a one-row call
    const single = await engine.post(INFER, { ...oipRequest(cancer, [4]), id: 'caller-d' });
    expect(single.body.id).toBe('caller-d');

    // feedback: a JSON array (one bad record among them), then JSON lines
    const truth = (row: number): string => (cancer.rows[row] as { label: string }).label;
    const feedback = await engine.post('/v1/feedback', [
      { requestId: 'caller-a', actualLabel: truth(1), source: 'back-office' },
      { requestId: 'caller-b', correct: labels[1] === truth(2) },
      { requestId: 'caller-x' },
    ]);
    expect(feedback.status).toBe(200);
    expect(feedback.body).toEqual({
      accepted: 2,
      rejected: 1,
      results: [
        { index: 0, requestId: 'caller-a', status: 'accepted' },
        { index: 1, requestId: 'caller-b', status: 'accepted' },
        { index: 2, requestId: 'caller-x', status: 'rejected', reasonCode: 'invalid-feedback', reason: 'feedback has neither actualLabel nor correct' },
      ],
    });
    const lines = await fetch(`${engine.url}/v1/feedback`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: `${JSON.stringify({ requestId: 'caller-c', actualLabel: truth(3) })}\n{"requestId":\n`,
    });
    expect(await lines.json()).toEqual({
      accepted: 1,
      rejected: 1,
      results: [
        { index: 0, requestId: 'caller-c', status: 'accepted' },
        { index: 1, status: 'rejected', reasonCode: 'undecodable', reason: 'line 2 is not valid JSON' },
      ],
    });
    const allRejected = await engine.post('/v1/feedback', { requestId: 'caller-a', actualLabel: '' });
    expect(allRejected.status).toBe(400);

    const samples = await waitFor('3 samples', () => {
      const s = engine.samples().filter((x) => ids.includes(x.requestId));
      return s.length >= 3 ? s : undefined;
    });
    expect(Object.fromEntries(samples.map((s) => [s.requestId, [s.label, s.predictedLabel, s.modelVersion]]))).toEqual({
      'caller-a': [truth(1), labels[0], '1'],
      'caller-b': [labels[1] === truth(2) ? labels[1] : expect.any(String), labels[1], '1'],
      'caller-c': [truth(3), labels[2], '1'],
    });
  });

  it('answers every bad input with its code and an OIP error naming the field, never a sensitive value', async () => {
    const good = oipRequest(cancer, [0], { attributes: ATTRIBUTES });
    const inputs = good.inputs as Array<{ name: string; shape: number[]; datatype: string; data: unknown[] }>;
    const cases: Array<[string, string | object, number, RegExp, string?]> = [
      ['malformed JSON', '{"inputs": [', 400, /JSON/],
      ['unknown category', good, 400, /no model serves category "loans"/, '/v2/models/loans/infer'],
      ['missing feature', { ...good, inputs: inputs.slice(1) }, 400, new RegExp(`needs feature\\(s\\) the request lacks and that have no configured default: ${cancer.featureNames[0]}`)],
      ['extra feature', { ...good, inputs: [...inputs, { name: 'shoeSize', shape: [1], datatype: 'FP64', data: [42] }] }, 400, /inputs\[30\] "shoeSize": model breast-cancer version 1 has no feature named so/],
      ['wrong datatype', { ...good, inputs: [{ ...inputs[0], datatype: 'BYTES', data: ['x'] }, ...inputs.slice(1)] }, 400, /inputs\[0\] ".*": datatype BYTES is not numeric/],
      ['string in numeric data', { ...good, inputs: [{ ...inputs[0], data: ['12.5'] }, ...inputs.slice(1)] }, 400, /inputs\[0\] ".*": data\[0\] is not a number/],
      ['non-finite number', JSON.stringify(good).replace(/"data":\[[^\]]*\]/, '"data":[1e999]'), 400, /inputs\[0\] ".*": data\[0\] is not a finite number/],
      ['fraction in INT32', { ...good, inputs: [{ ...inputs[0], datatype: 'INT32', data: [1.5] }, ...inputs.slice(1)] }, 400, /data\[0\] is not an integer/],
      ['row counts differ', { ...good, inputs: [{ ...inputs[0], shape: [2], data: [1, 2] }, ...inputs.slice(1)] }, 400, /inputs\[1\] ".*": 1 row\(s\), but the inputs before it have 2/],
      ['shape and data disagree', { ...good, inputs: [{ ...inputs[0], shape: [2] }, ...inputs.slice(1)] }, 400, /shape \[2\] says 2 value\(s\), data has 1/],
      ['no inputs', { inputs: [] }, 400, /body\/inputs must NOT have fewer than 1 items/],
      ['unknown top-level field', { ...good, inptus: [] }, 400, /body must NOT have additional properties/],
      ['attribute not a string', { ...good, parameters: { attributes: { name: 'Customer Seventeen', age: 41 } } }, 400, /body\/parameters\/attributes/],
      ['unknown version', good, 404, /model breast-cancer has no version "9" being served \(serving: 1\)/, '/v2/models/breast-cancer/versions/9/infer'],
    ];
    for (const [what, body, status, message, path] of cases) {
      const res = await engine.post(path ?? INFER, body);
      expect(res.status, what).toBe(status);
      expect(res.body.error, what).toMatch(message);
      expect(JSON.stringify(res.body), what).not.toMatch(/Customer Seventeen|900123/);
    }
    // curl -d without -H sends a form content type: 415 saying which one to send
    for (const path of [INFER, '/v1/feedback']) {
      const form = await engine.post(path, good, { 'content-type': 'application/x-www-form-urlencoded' });
      expect(form.status, path).toBe(415);
      expect(form.body.error, path).toMatch(/send "content-type: application\/json"/);
    }
    const pinned = await engine.post('/v2/models/breast-cancer/versions/1/infer', good);
    expect(pinned.status).toBe(200);
  });

  it('serves model metadata, readiness and health', async () => {
    const meta = (await (await fetch(`${engine.url}/v2/models/digits`)).json()) as { name: string; versions: string[]; inputs: Array<{ name: string; datatype: string }>; parameters: { classes: string[] } };
    expect(meta.name).toBe('digits');
    expect(meta.versions).toEqual(['1']);
    expect(meta.inputs.map((i) => i.name)).toEqual(digits.featureNames);
    expect(meta.inputs.every((i) => i.datatype === 'FP64')).toBe(true);
    expect(meta.parameters.classes).toEqual(digits.classes);
    expect((await fetch(`${engine.url}/v2/models/digits/ready`)).status).toBe(200);
    expect((await fetch(`${engine.url}/v2/models/loans/ready`)).status).toBe(404);
    // the version-pinned readiness of OIP: the serving version is ready, another is not
    expect(await (await fetch(`${engine.url}/v2/models/digits/versions/1/ready`)).json()).toEqual({ name: 'digits', version: '1', ready: true });
    expect((await fetch(`${engine.url}/v2/models/digits/versions/9/ready`)).status).toBe(404);
    expect((await fetch(`${engine.url}/v2/models/loans`)).status).toBe(400);
    expect(await (await fetch(`${engine.url}/v2/health/live`)).json()).toEqual({ live: true });
    expect(await (await fetch(`${engine.url}/v2/health/ready`)).json()).toEqual({ ready: true });
  });

  it('micro-batches concurrent calls into fewer onnxruntime runs, every answer recorded', async () => {
    const metric = async (): Promise<{ runs: number; rows: number }> => {
      const text = await (await fetch(`${engine.url}/metrics`)).text();
      const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
      return { runs: value('sampleloop_gateway_batch_rows_count'), rows: value('sampleloop_gateway_batch_rows_sum') };
    };
    const before = await metric();
    const answers = await burst(`${engine.url}${INFER}`, Array.from({ length: 64 }, (_, i) => oipRequest(cancer, [i % cancer.rows.length])));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const after = await metric();
    expect(after.rows - before.rows).toBe(64);
    expect(after.runs - before.runs).toBeLessThan(64);
    const recorded = new Set(engine.predictions().map((p) => p.requestId));
    for (const a of answers) expect(recorded.has(a.body.id as string)).toBe(true);
  });

  it('a hot swap mid-traffic: calls after the new version is published answer with it', async () => {
    const answered: Array<{ id: string; version: string; phase: 'before' | 'after' }> = [];
    let phase: 'before' | 'after' = 'before';
    let stop = false;
    const traffic = (async () => {
      for (let i = 0; !stop; i++) {
        const sent = phase;
        const res = await engine.post(INFER, oipRequest(cancer, [i % 50]));
        expect(res.status).toBe(200);
        answered.push({ id: res.body.id as string, version: res.body.model_version as string, phase: sent });
      }
    })();
    await waitFor('traffic on v1', () => (answered.length >= 20 ? true : undefined));
    await engine.publish(cancer, '2', onnxOf(cancer, '2'));
    phase = 'after';
    await waitFor('traffic on v2', () => (answered.filter((a) => a.version === '2').length >= 20 ? true : undefined));
    stop = true;
    await traffic;
    expect(answered.filter((a) => a.phase === 'after').every((a) => a.version === '2')).toBe(true);
    expect(answered.some((a) => a.version === '1')).toBe(true);
    // every answer is recorded with the version that answered it
    const recorded = new Map(engine.predictions().map((p) => [p.requestId, p.modelVersion]));
    for (const a of answered) expect(recorded.get(a.id)).toBe(a.version);
  });
});

describe('the gateway\'s bounded queue', () => {
  it('refuses calls with 503 and Retry-After when the queue is full, and answers the others', async () => {
    const engine = await startGatewayEngine({ gateway: { maxQueueRows: 2, maxBatchRows: 1, retryAfterSeconds: 2 } });
    try {
      await engine.publish(digits, '1');
      const answers = await burst(`${engine.url}/v2/models/digits/infer`, Array.from({ length: 200 }, (_, i) => oipRequest(digits, [i])));
      const refused = answers.filter((a) => a.status === 503);
      const ok = answers.filter((a) => a.status === 200);
      expect(refused.length).toBeGreaterThan(0);
      expect(ok.length).toBeGreaterThan(0);
      expect(refused.length + ok.length).toBe(200);
      expect(refused[0]!.retryAfter).toBe('2');
      expect(refused[0]!.body.error).toMatch(/queue for digits is full/);
      const recorded = new Set(engine.predictions().map((p) => p.requestId));
      expect(ok.every((a) => recorded.has(a.body.id as string))).toBe(true);
      expect(recorded.size).toBe(ok.length);
    } finally {
      await engine.close();
    }
  });
});

describe('bearer tokens', () => {
  const file = join(tmpdir(), `sampleloop-tokens-${process.pid}.json`);
  const tokens = { infer: ['infer-token-0123456789'], feedback: ['feedback-token-0123456789'], topics: ['topics-token-0123456789'] };

  it('each scope has its own tokens; health and metrics are open; a wrong token is refused', async () => {
    writeFileSync(file, JSON.stringify(tokens));
    const engine = await startGatewayEngine({}, { tokens: BearerTokens.fromFile(file) });
    try {
      await engine.publish(cancer, '1');
      const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });
      expect((await engine.post(INFER, oipRequest(cancer, [0]))).status).toBe(401);
      expect((await engine.post(INFER, oipRequest(cancer, [0]), bearer(tokens.feedback[0]!))).status).toBe(401);
      expect((await engine.post(INFER, oipRequest(cancer, [0]), bearer('infer-token-012345678X'))).status).toBe(401);
      const ok = await engine.post(INFER, oipRequest(cancer, [0]), bearer(tokens.infer[0]!));
      expect(ok.status).toBe(200);
      expect((await engine.post('/v1/feedback', { requestId: ok.body.id, correct: true }, bearer(tokens.infer[0]!))).status).toBe(401);
      expect((await engine.post('/v1/feedback', { requestId: ok.body.id, correct: true }, bearer(tokens.feedback[0]!))).status).toBe(200);
      expect((await fetch(`${engine.url}/topics`)).status).toBe(401);
      expect((await fetch(`${engine.url}/topics`, { headers: bearer(tokens.topics[0]!) })).status).toBe(200);
      // a route that does not exist is a 404 saying so, not a 401 blaming a good token
      const missing = await fetch(`${engine.url}/v2/models/breast-cancer/nothing-here`, { headers: bearer(tokens.infer[0]!) });
      expect(missing.status).toBe(404);
      expect(((await missing.json()) as { error: string }).error).toMatch(/^no route GET \/v2\/models\/breast-cancer\/nothing-here/);
      expect((await fetch(`${engine.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${engine.url}/metrics`)).status).toBe(200);
      expect((await fetch(`${engine.url}/v2/health/ready`)).status).toBe(200);
    } finally {
      await engine.close();
    }
  });

  it('refuses to listen on a non-loopback address without tokens unless told to', async () => {
    const base = { port: 0, metrics: new EngineMetrics(), logger: silentLogger(), routes: { health: () => ({ healthy: true, details: {} }) } };
    await expect(startHttpServer({ ...base, host: '0.0.0.0' })).rejects.toThrow(/reachable from other machines, and no http.tokensFile is configured/);
    const open = await startHttpServer({ ...base, host: '0.0.0.0', allowUnauthenticated: true });
    await open.close();
  });
});

describe('TLS', () => {
  it('serves the gateway over HTTPS with the configured certificate, and nothing over plain HTTP', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sampleloop-tls-'));
    const certFile = join(dir, 'cert.pem');
    const keyFile = join(dir, 'key.pem');
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    const engine = await startGatewayEngine({}, { tls: { certFile, keyFile } });
    try {
      await engine.publish(cancer, '1');
      expect(engine.url).toMatch(/^https:/);
      const answer = await new Promise<{ status: number; body: { model_version: string } }>((resolve, reject) => {
        const req = httpsRequest(`${engine.url}${INFER}`, { method: 'POST', ca: readFileSync(certFile), headers: { 'content-type': 'application/json' } }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { model_version: string } }));
        });
        req.on('error', reject);
        req.end(JSON.stringify(oipRequest(cancer, [0])));
      });
      expect(answer.status).toBe(200);
      expect(answer.body.model_version).toBe('1');
      await expect(fetch(engine.url.replace('https:', 'http:') + '/v2/health/live')).rejects.toThrow();
    } finally {
      await engine.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('request IDs', () => {
  it('UUIDv7, strictly increasing within a process, even within one millisecond', () => {
    const gen = new RequestIdGenerator(() => 1_750_000_000_000);
    const ids = Array.from({ length: 5000 }, () => gen.next());
    expect(ids.every(isUuidV7)).toBe(true);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
    expect(uuidV7Time(ids[0]!)).toBe(1_750_000_000_000);
  });
});
