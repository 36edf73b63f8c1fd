/**
 * The example external trainer (examples/external-trainer/trainer.py: scikit-learn gradient
 * boosting, skl2onnx) against the embedded default with a running engine: version 1 from a labeled
 * CSV (`models train`), traffic and feedback make samples, the trigger fires, the Python trainer
 * exports the trigger's snapshot, trains and publishes version 2, and the predictor serves it.
 * Its Python packages come from scripts/python-env.sh (a cached venv; the first run installs them).
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDataset } from '../models/datasets/index.js';
import { naturalCompare } from '../models/trainer-job.js';
import { cli, cleanEnv, jsonLines, startCli, waitFor } from './helpers/cli-process.js';
import { ensureBuilt, ROOT } from './helpers/dist.js';
import { pythonEnv } from './helpers/python-env.js';
import { csvText, splitRows } from './helpers/tables.js';

const cancer = loadDataset('breast-cancer');
const { train, test } = splitRows(cancer.rows);

let base: string;
let python: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  await ensureBuilt();
  python = pythonEnv();
  base = mkdtempSync(join(tmpdir(), 'sampleloop-external-'));
}, 20 * 60_000);
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(base, { recursive: true, force: true });
});

describe('examples/external-trainer', () => {
  it('trains on a trigger\'s snapshot in Python, publishes with --snapshot, and the new version serves', async () => {
    const dataDir = join(base, 'data');
    const configFile = join(base, 'config.json');
    writeFileSync(configFile, JSON.stringify({ trigger: { enabled: true, minNewSamples: 250, debounceMs: 3_600_000, checkIntervalMs: 200 }, predictor: { enabled: true }, categories: { cancer: { classes: ['benign', 'malignant'] } } }));
    const common = ['--data-dir', dataDir, '--config', configFile];

    // version 1: the built-in model from a labeled CSV
    const trainFile = join(base, 'train.csv');
    writeFileSync(trainFile, csvText(cancer.featureNames, train.slice(0, 200)));
    const v1 = await cli(['models', 'train', '--category', 'cancer', '--from', trainFile, ...common]);
    expect(v1.stderr).toBe('');
    expect(v1.code).toBe(0);

    const engine = startCli(['run', '--http-port', '0', ...common]);
    children.push(engine);
    engine.stderr!.resume();
    engine.stdout!.resume();
    const exited = new Promise<number | null>((resolve) => engine.once('exit', (code) => resolve(code)));
    await waitFor('engine.json', () => (existsSync(join(dataDir, 'engine.json')) ? true : undefined), 60_000);
    try {
      // traffic: the rest of the training rows as requests (CSV, IDs from a column), then their feedback
      const traffic = train.slice(200);
      const requestsFile = join(base, 'requests.csv');
      writeFileSync(requestsFile, csvText(cancer.featureNames, traffic, { header: 'requestId', cell: (i) => `r-${i}` }));
      const produced = await cli(['produce', 'requests', '--file', requestsFile, '--category', 'cancer', '--ignore', 'label', ...common]);
      expect(produced.code).toBe(0);
      await waitFor('predictions', async () => {
        const r = await cli(['consume', 'predictions', ...common]);
        return jsonLines(r.stdout).length >= traffic.length ? true : undefined;
      }, 120_000);
      const now = Date.now();
      const feedback = traffic.map((r, i) => JSON.stringify({ requestId: `r-${i}`, timestamp: now + i, source: 'test', actualLabel: r.label, correct: null })).join('\n');
      expect((await cli(['produce', 'feedback', ...common], { input: `${feedback}\n` })).code).toBe(0);
      const trigger = await waitFor('a retrain trigger', async () => {
        const r = await cli(['consume', 'retrain-triggers', ...common]);
        return jsonLines(r.stdout)[0];
      }, 120_000);
      expect(trigger).toMatchObject({ category: 'cancer', servingVersion: '1' });

      // the external trainer, once
      const state = join(base, 'state.json');
      const run = spawnSync(python, [join(ROOT, 'examples', 'external-trainer', 'trainer.py'), '--sampleloop', `${process.execPath} ${join(ROOT, 'bin', 'sampleloop.js')}`, ...common, '--state', state, '--workdir', base, '--once'], {
        cwd: ROOT,
        env: cleanEnv(),
        encoding: 'utf8',
        timeout: 300_000,
      });
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      const outcome = JSON.parse(run.stdout.trim().split('\n').pop() as string) as { triggerId: string; published: { version: string } };
      expect(outcome.triggerId).toBe(trigger.triggerId);
      expect(outcome.published.version).toBe('2');
      expect(JSON.parse(readFileSync(state, 'utf8'))).toEqual([trigger.triggerId]);

      const versions = jsonLines((await cli(['models', 'list', '--json', ...common])).stdout);
      const v2 = versions.find((v) => v.version === '2');
      expect(v2).toMatchObject({ category: 'cancer', trainer: 'example-sklearn-gbt/1', verified: true, serving: true, trainingSnapshot: trigger.snapshot, classes: ['benign', 'malignant'] });
      expect(v2?.featureNames).toEqual([...cancer.featureNames].sort(naturalCompare));

      // the predictor swaps to version 2: new requests are predicted by it, and well
      const after = test.slice(0, 60);
      const afterFile = join(base, 'after.csv');
      writeFileSync(afterFile, csvText(cancer.featureNames, after, { header: 'requestId', cell: (i) => `after-${i}` }));
      // the predictor polls the ledger; produce until a prediction carries version 2
      const predictions = await waitFor('predictions by version 2', async () => {
        await cli(['produce', 'requests', '--file', afterFile, '--category', 'cancer', '--ignore', 'label', ...common]);
        const all = jsonLines((await cli(['consume', 'predictions', ...common])).stdout) as Array<{ requestId: string; modelVersion: string; predictedLabel: string }>;
        const byV2 = all.filter((p) => p.requestId.startsWith('after-') && p.modelVersion === '2');
        return byV2.length >= after.length ? byV2 : undefined;
      }, 120_000);
      const latest = new Map(predictions.map((p) => [p.requestId, p]));
      const correct = after.filter((r, i) => latest.get(`after-${i}`)?.predictedLabel === r.label).length;
      // the served predictions are version 2's: the same accuracy as `models evaluate --version 2` on these rows
      const labeled = join(base, 'after-labeled.csv');
      writeFileSync(labeled, csvText(cancer.featureNames, after));
      const evaluated = await cli(['models', 'evaluate', '--category', 'cancer', '--version', '2', '--from', labeled, '--json', ...common]);
      expect(evaluated.code).toBe(0);
      const report = JSON.parse(evaluated.stdout) as { accuracy: number; rows: number };
      expect(report.rows).toBe(after.length);
      expect(correct / after.length).toBeCloseTo(report.accuracy, 12);
      expect(report.accuracy).toBeGreaterThan(0.75);
    } finally {
      engine.kill('SIGTERM');
      await exited;
    }
  }, 600_000);
});
