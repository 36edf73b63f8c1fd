/**
 * The `models` commands under the default trust policy (no `models.trust.keys`: the data dir's
 * generated key is the one trusted), in process through cli/main.ts on the embedded log:
 * `models train` signs what it publishes, `models publish --key` with a key that policy does not
 * trust is refused, and `models export` / `models evaluate` pick the version the predictor serves,
 * not one a stranger appended to the topic.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { directAccess } from '../access/embedded.js';
import { openEmbeddedLog } from '../app/embedded.js';
import { parseConfig } from '../config/config.js';
import { loadDataset } from '../models/datasets/index.js';
import { loadSigner, publishVersion, readLedger } from '../models/ledger.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import { rocksRegistryStorage } from '../schemas/registry-storage.js';
import { runCli } from './helpers/cli-in-process.js';
import { splitRows, writeCsv } from './helpers/tables.js';

const cancer = loadDataset('breast-cancer');
const { train, test } = splitRows(cancer.rows);

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sampleloop-default-trust-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  while (dirs.length > 0) rmSync(dirs.pop() as string, { recursive: true, force: true });
});

async function withLedgerAccess<T>(dataDir: string, fn: (access: ReturnType<typeof directAccess>) => Promise<T>): Promise<T> {
  const log = await openEmbeddedLog(parseConfig({ dataDir }));
  try {
    return await fn(directAccess(log, new LocalSchemaRegistry(rocksRegistryStorage(log.db))));
  } finally {
    await log.close();
  }
}

async function trainedDataDir(): Promise<{ dir: string; dataDir: string; testFile: string; exported: string }> {
  const dir = tempDir();
  const dataDir = join(dir, 'data');
  const trainFile = join(dir, 'train.csv');
  const testFile = join(dir, 'test.csv');
  writeCsv(trainFile, cancer.featureNames, train);
  writeCsv(testFile, cancer.featureNames, test);
  expect((await runCli('models', 'train', '--category', 'cancer', '--from', trainFile, '--data-dir', dataDir)).code).toBe(0);
  const exported = join(dir, 'v1.onnx');
  expect((await runCli('models', 'export', '--category', 'cancer', '--out', exported, '--data-dir', dataDir)).code).toBe(0);
  return { dir, dataDir, testFile, exported };
}

describe('models commands under the default trust policy', () => {
  it('models train signs the version it publishes with the data dir key, so verify passes and it is served', async () => {
    const { dataDir } = await trainedDataDir();
    const verify = await runCli('models', 'verify', '--data-dir', dataDir);
    expect(verify).toMatchObject({ code: 0, stdout: ['ok: 1 version(s) of 1 category verified'] });
    const localKey = loadSigner(join(dataDir, 'model-signing.key'));
    const listed = (await runCli('models', 'list', '--json', '--data-dir', dataDir)).stdout.map((l) => JSON.parse(l) as { version: string; verified: boolean; serving: boolean; signerKeyId: string | null });
    expect(listed).toEqual([expect.objectContaining({ version: '1', verified: true, serving: true, signerKeyId: localKey.keyId })]);
  });

  it('models publish --key with a key the policy does not trust is refused (exit 1) and appends nothing', async () => {
    const { dir, dataDir, exported } = await trainedDataDir();
    const stranger = join(dir, 'stranger.key');
    expect((await runCli('models', 'keygen', '--out', stranger)).code).toBe(0);
    const refused = await runCli('models', 'publish', exported, '--category', 'cancer', '--version', 'evil', '--key', stranger, '--data-dir', dataDir);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/not published: predictors would refuse this version of "cancer" \(untrusted-signer: signed by key [0-9a-f]{32}, which the trust policy \(models.trust.keys\) does not list\)/);
    expect(refused.stdout).toEqual([]);
    const versions = await withLedgerAccess(dataDir, async (access) => (await readLedger(access)).versions.map((v) => v.version?.version));
    expect(versions).toEqual(['1']);
  });

  it('models export and evaluate pick the served version, not a stranger-signed one appended to the topic', async () => {
    const { dir, dataDir, testFile, exported } = await trainedDataDir();
    const stranger = join(dir, 'stranger.key');
    expect((await runCli('models', 'keygen', '--out', stranger)).code).toBe(0);
    await withLedgerAccess(dataDir, async (access) => {
      const bytes = readFileSync(exported);
      await publishVersion(access, { category: 'cancer', version: 'evil', onnx: bytes, featureNames: cancer.featureNames, classes: cancer.classes, createdAt: Date.now() }, { signer: loadSigner(stranger) });
      expect((await readLedger(access)).heads.get('cancer')?.version).toBe('evil'); // integrity alone accepts it
    });
    const exportedAgain = await runCli('models', 'export', '--category', 'cancer', '--out', join(dir, 'served.onnx'), '--data-dir', dataDir);
    expect(exportedAgain.code).toBe(0);
    expect(JSON.parse(exportedAgain.stdout[0] as string)).toMatchObject({ category: 'cancer', version: '1' });
    const evaluated = await runCli('models', 'evaluate', '--category', 'cancer', '--from', testFile, '--json', '--data-dir', dataDir);
    expect(evaluated.code).toBe(0);
    expect(JSON.parse(evaluated.stdout[0] as string)).toMatchObject({ version: '1', rows: test.length });
    const byLabel = await runCli('models', 'export', '--category', 'cancer', '--version', 'evil', '--out', join(dir, 'evil.onnx'), '--data-dir', dataDir);
    expect(byLabel.code).toBe(1);
    expect(byLabel.stderr).toMatch(/version "evil" of "cancer" fails verification \(untrusted-signer/);
  });
  it('models checkpoint --out into a missing directory: exit 2 naming the file, after printing the checkpoint', async () => {
    const { dir, dataDir } = await trainedDataDir();
    const target = join(dir, 'no-such-dir', 'checkpoint.json');
    const run = await runCli('models', 'checkpoint', '--out', target, '--data-dir', dataDir);
    expect(run.code).toBe(2);
    expect(JSON.parse(run.stdout[0] as string)).toMatchObject({ format: 'sampleloop-ledger-checkpoint/1', heads: [{ category: 'cancer', version: '1' }] });
    expect(run.stderr).toBe(`error [SL_USAGE]: cannot write the checkpoint to --out ${target}: ENOENT: no such file or directory, open '${target}' (it was printed above; check the path)\n`);
  });
});
