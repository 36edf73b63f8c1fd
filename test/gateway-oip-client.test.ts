/**
 * A client that is not ours: NVIDIA's Python `tritonclient[http]` (from PyPI, in a cached virtualenv
 * that scripts/oip-client-venv.sh creates) checks liveness and readiness, reads the model's metadata,
 * runs an inference on the gateway and reads its outputs. Skipped only when PyPI cannot be reached.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOnnxModel } from '../models/onnx-runtime.js';
import { ROOT } from './helpers/dist.js';
import { cancer, onnxOf, startGatewayEngine, type GatewayEngine } from './helpers/gateway-harness.js';

const venv = spawnSync(join(ROOT, 'scripts', 'oip-client-venv.sh'), { encoding: 'utf8', timeout: 600_000 });
const pypiUnreachable = venv.status === 3;
if (pypiUnreachable) console.warn(`skipping the tritonclient test: ${venv.stderr.trim()}`);

describe.skipIf(pypiUnreachable)('an OIP client of another ecosystem (tritonclient[http])', () => {
  let engine: GatewayEngine;
  const dir = mkdtempSync(join(tmpdir(), 'sampleloop-oip-client-'));
  const onnx = onnxOf(cancer, '1', 300);

  beforeAll(async () => {
    expect(venv.status, venv.stderr).toBe(0);
    engine = await startGatewayEngine();
    await engine.publish(cancer, '1', onnx);
  });
  afterAll(async () => {
    await engine?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads metadata and an inference answer the gateway gave, with the caller\'s request ID', async () => {
    const rows = [0, 1, 2].map((r) => cancer.rows[r]!.features);
    const spec = join(dir, 'rows.json');
    writeFileSync(spec, JSON.stringify({ features: cancer.featureNames, rows, requestId: 'triton-call-1' }));
    const python = venv.stdout.trim();
    // asynchronously: the gateway answers from this process's event loop
    const run = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(python, [join(ROOT, 'test', 'fixtures', 'oip_client.py'), engine.url.replace('http://', ''), 'breast-cancer', spec], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.once('close', (status) => resolve({ status, stdout, stderr }));
    });
    expect(run.status, run.stderr).toBe(0);
    const read = JSON.parse(run.stdout) as { live: boolean; ready: boolean; metadata: { name: string; versions: string[]; inputs: string[] }; id: string; model_version: string; labels: string[]; scores: number[][]; request_ids: string[] };

    const model = await loadOnnxModel(onnx, { featureNames: cancer.featureNames, classes: cancer.classes });
    const expected = await model.predictBatch(rows);
    await model.close();
    expect(read.live).toBe(true);
    expect(read.ready).toBe(true);
    expect(read.metadata).toEqual({ name: 'breast-cancer', versions: ['1'], inputs: cancer.featureNames });
    expect(read.model_version).toBe('1');
    expect(read.labels).toEqual(expected.map((p) => p.label));
    read.scores.forEach((row, i) => row.forEach((s, c) => expect(s).toBeCloseTo(expected[i]!.scores[cancer.classes[c]!]!, 12)));
    // three rows: the call's OIP id is kept as the call's id, each row got its own request ID
    expect(read.id).toBe('triton-call-1');
    expect(read.request_ids).toHaveLength(3);
    const recorded = new Map(engine.predictions().map((p) => [p.requestId, p]));
    read.request_ids.forEach((id, i) => expect(recorded.get(id)?.predictedLabel).toBe(read.labels[i]));
  });
});
