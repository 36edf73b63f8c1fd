/**
 * The gateway's promise under a crash: `sampleloop run` (the compiled CLI) is killed with SIGKILL while
 * calls are in flight; every call that got an answer has its prediction on the predictions topic
 * (answered ⊆ recorded), with the version and label it answered.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../config/config.js';
import { directAccess } from '../access/embedded.js';
import { openEmbeddedLog, startEmbeddedApp } from '../app/embedded.js';
import { silentLogger } from '../engine/logger.js';
import { ledgerKeysFor, publishVersion } from '../models/ledger.js';
import { decodeFramed } from '../schemas/codec.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import { rocksRegistryStorage } from '../schemas/registry-storage.js';
import type { Prediction } from '../schemas/types.js';
import { startCli, waitFor } from './helpers/cli-process.js';
import { ensureBuilt } from './helpers/dist.js';
import { cancer, oipRequest, onnxOf } from './helpers/gateway-harness.js';

describe('the gateway under kill -9', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sampleloop-gateway-crash-'));
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    await ensureBuilt();
  });
  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('never leaves an answered call without its prediction record', async () => {
    const dataDir = join(dir, 'data');
    const configFile = join(dir, 'config.json');
    writeFileSync(configFile, JSON.stringify({ dataDir, http: { port: 0 }, log: { level: 'warn' } }));
    const config = parseConfig(JSON.parse(readFileSync(configFile, 'utf8')));
    const setup = await startEmbeddedApp(config, { logger: silentLogger() });
    await publishVersion(
      directAccess(setup.log, setup.registry),
      { category: cancer.name, version: '1', onnx: onnxOf(cancer, '1'), featureNames: cancer.featureNames, classes: cancer.classes, metrics: {}, trainer: 'test', createdAt: Date.now() },
      { topic: config.topics.models, ...ledgerKeysFor(config, { generate: true }) }, // signed: the gateway serves only trusted versions
    );
    await setup.close();

    const engine = startCli(['run', '--config', configFile]);
    children.push(engine);
    const infoPath = join(dataDir, 'engine.json');
    const { url } = await waitFor('engine.json', () => (existsSync(infoPath) ? (JSON.parse(readFileSync(infoPath, 'utf8')) as { url: string }) : undefined));
    const exited = new Promise((resolve) => engine.once('exit', resolve));

    const answered = new Map<string, { label: string; version: string }>();
    let failed = 0;
    let killed = false;
    const worker = async (w: number): Promise<void> => {
      for (let i = 0; !killed; i++) {
        try {
          const res = await fetch(`${url}/v2/models/breast-cancer/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(oipRequest(cancer, [(w * 31 + i) % cancer.rows.length])) });
          const body = (await res.json()) as { id: string; model_version: string; outputs: Array<{ name: string; data: string[] }> };
          if (res.status === 200) answered.set(body.id, { label: body.outputs.find((o) => o.name === 'label')!.data[0]!, version: body.model_version });
        } catch {
          failed++;
          return; // the engine is gone
        }
      }
    };
    const workers = Array.from({ length: 16 }, (_, w) => worker(w));
    await waitFor('300 answers', () => (answered.size >= 300 ? true : undefined), 60_000);
    engine.kill('SIGKILL');
    killed = true;
    await exited;
    await Promise.all(workers);
    expect(failed).toBeGreaterThan(0); // calls were in flight when it died

    const log = await openEmbeddedLog(config);
    try {
      const registry = new LocalSchemaRegistry(rocksRegistryStorage(log.db));
      const recorded = new Map<string, Prediction>();
      const partitions = log.topic(config.topics.predictions)?.partitions ?? 0;
      for (let p = 0; p < partitions; p++) {
        for (const r of log.read(config.topics.predictions, p, 0, 1_000_000)) {
          const prediction = decodeFramed(r.value!, (id) => registry.cached(id)).value as Prediction;
          recorded.set(prediction.requestId, prediction);
        }
      }
      const missing = [...answered.keys()].filter((id) => !recorded.has(id));
      expect(missing).toEqual([]);
      for (const [id, a] of answered) expect([recorded.get(id)!.predictedLabel, recorded.get(id)!.modelVersion]).toEqual([a.label, a.version]);
      expect(recorded.size).toBeGreaterThanOrEqual(answered.size);
    } finally {
      await log.close();
    }
  }, 120_000);
});
