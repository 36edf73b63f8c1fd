/**
 * `sampleloop models keygen | checkpoint | verify` and signed `models publish` (in process, through
 * cli/main.ts, on the embedded log): per-category trust, refusal reasons in `verify`, checkpoints
 * written to a file and POSTed to a real HTTP server, a ledger rewritten in place and re-signed with
 * the data dir's own key failing `verify --checkpoint`, and legacy unsigned ledgers under allowUnsigned.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { directAccess, type LogAccess } from '../access/embedded.js';
import { openEmbeddedLog } from '../app/embedded.js';
import { loadConfig } from '../config/config.js';
import { decodeEntry, encodeEntry, KEY_RECORD, partitionPrefix, recordKey } from '../engine/embedded/log-codec.js';
import { loadDataset } from '../models/datasets/index.js';
import { buildVersion, GENERATED_SIGNING_KEY_FILE, loadSigner, publishVersion, readLedger, signVersion, versionSigningMessage, type NewVersion } from '../models/ledger.js';
import { defaultTrainOptions, trainLogistic } from '../models/logistic-regression.js';
import { exportOnnx } from '../models/onnx-export.js';
import { encodeFramed } from '../schemas/codec.js';
import { rocksRegistryStorage } from '../schemas/registry-storage.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';
import type { ModelVersion } from '../schemas/types.js';
import { runCli } from './helpers/cli-in-process.js';

const digits = loadDataset('digits');
const T0 = 1_750_000_000_000;

const dirs: string[] = [];
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  vi.restoreAllMocks();
  while (dirs.length > 0) rmSync(dirs.pop() as string, { recursive: true, force: true });
});

const cli = runCli;

function modelFile(dir: string, rows: number, name: string): string {
  const model = trainLogistic(digits.rows.slice(0, rows), digits.featureNames, digits.classes, { ...defaultTrainOptions, maxIterations: 30 });
  const file = join(dir, `${name}.onnx`);
  writeFileSync(file, exportOnnx(model, { version: name, category: 'digits' }));
  return file;
}

function writeConfig(dir: string, config: object): string {
  const file = join(dir, 'sampleloop.json');
  writeFileSync(file, JSON.stringify({ log: { level: 'silent' }, privacy: { keyEnv: 'SAMPLELOOP_TRUST_CLI_TEST_UNUSED_KEY' }, ...config }));
  return file;
}

/** Opens the data dir's log directly (no engine running) for what an attacker with access to it would do. */
async function withLog<T>(configFile: string, fn: (access: LogAccess, log: Awaited<ReturnType<typeof openEmbeddedLog>>) => Promise<T>): Promise<T> {
  const log = await openEmbeddedLog(loadConfig({ file: configFile }));
  try {
    return await fn(directAccess(log, new LocalSchemaRegistry(rocksRegistryStorage(log.db))), log);
  } finally {
    await log.close();
  }
}

function onnxInput(rows: number, overrides: Partial<NewVersion> = {}): NewVersion {
  const model = trainLogistic(digits.rows.slice(0, rows), digits.featureNames, digits.classes, { ...defaultTrainOptions, maxIterations: 30 });
  return { category: 'digits', onnx: exportOnnx(model, { version: String(rows), category: 'digits' }), featureNames: digits.featureNames, classes: digits.classes, createdAt: T0, ...overrides };
}

describe('models keygen and a per-category trust policy', () => {
  it('signs with the configured or given key, refuses to publish what the policy would refuse, and verify names each refused version', async () => {
    const dir = tempDir('sampleloop-trust-cli-');
    const trainer = await cli('models', 'keygen', '--out', join(dir, 'keys', 'trainer.key'), '--name', 'trainer');
    expect(trainer.code).toBe(0);
    const trainerKey = JSON.parse(trainer.stdout[0] as string) as { privateKeyFile: string; publicKeyFile: string; keyId: string; publicKey: string };
    expect(trainerKey.keyId).toMatch(/^[0-9a-f]{32}$/);
    expect(statSync(trainerKey.privateKeyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(trainerKey.publicKeyFile, 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect(trainer.stderr).toContain(`"publicKey": ${JSON.stringify(trainerKey.publicKey)}`);
    const again = await cli('models', 'keygen', '--out', trainerKey.privateKeyFile);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/never overwrites/);
    const team = JSON.parse((await cli('models', 'keygen', '--out', join(dir, 'keys', 'team.key'))).stdout[0] as string) as { privateKeyFile: string; publicKey: string; keyId: string };

    const configFile = writeConfig(dir, {
      dataDir: join(dir, 'data'),
      models: {
        signing: { keyFile: trainerKey.privateKeyFile },
        trust: { keys: [{ name: 'trainer', publicKey: trainerKey.publicKey }, { name: 'digits-team', publicKey: team.publicKey, categories: ['digits'] }] },
      },
    });
    const v1 = modelFile(dir, 150, 'v1');
    expect((await cli('models', 'publish', v1, '--category', 'digits', '-c', configFile)).code).toBe(0);
    const byTeam = await cli('models', 'publish', modelFile(dir, 250, 'v2'), '--category', 'digits', '--key', team.privateKeyFile, '-c', configFile);
    expect(byTeam.code).toBe(0);
    expect(JSON.parse(byTeam.stdout[0] as string)).toMatchObject({ version: '2', sequence: 2, signerKeyId: team.keyId });
    const refused = await cli('models', 'publish', v1, '--category', 'cancer', '--key', team.privateKeyFile, '-c', configFile);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/not published: predictors would refuse this version of "cancer" \(untrusted-signer: key "digits-team" \([0-9a-f]{32}\) is trusted for "digits", not for "cancer"\)/);
    const list = (await cli('models', 'list', '--json', '-c', configFile)).stdout.map((l) => JSON.parse(l) as { version: string; signerKeyId: string; verified: boolean });
    expect(list.map((v) => `${v.version}:${v.signerKeyId}:${v.verified}`)).toEqual([`1:${trainerKey.keyId}:true`, `2:${team.keyId}:true`]);

    // Someone who can write the topic (but holds no trusted key) appends well-formed successors of v2.
    const stranger = join(dir, 'stranger.key');
    await cli('models', 'keygen', '--out', stranger);
    await withLog(configFile, async (access) => {
      const head = (await readLedger(access)).heads.get('digits') as ModelVersion;
      const next = buildVersion(onnxInput(300, { version: '3' }), head);
      const forgedSignature = loadSigner(stranger).sign(versionSigningMessage(next.recordHash)).toString('base64');
      for (const value of [next, { ...next, signer: trainerKey.publicKey, signature: forgedSignature }, signVersion(next, loadSigner(stranger))]) {
        await access.produceAvro?.('models', 'ModelVersion', [{ key: 'digits', value, timestamp: T0 }]);
      }
    });
    const verify = await cli('models', 'verify', '-c', configFile);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toEqual([
      'FAIL digits version 3 (sequence 3, offset 2): unsigned: the version is not signed, and the version it follows is: once a category has a signed version it accepts only signed ones',
      expect.stringMatching(/^FAIL digits version 3 \(sequence 3, offset 3\): bad-signature: the signature does not verify under the signer's key [0-9a-f]{32} for recordHash [0-9a-f]{64}$/),
      expect.stringMatching(/^FAIL digits version 3 \(sequence 3, offset 4\): untrusted-signer: signed by key [0-9a-f]{32}, which the trust policy \(models.trust.keys\) does not list$/),
    ]);
    expect(verify.stderr).toContain('error [SL_LEDGER]: 3 of 5 ledger record(s) failed verification');
  });
});

describe('models checkpoint and verify --checkpoint', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  it('writes and POSTs a signed checkpoint; the ledger extended later verifies against it, one rewritten in place and re-signed does not', async () => {
    const received: Array<{ url: string; type: string; body: string }> = [];
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      req.on('end', () => {
        received.push({ url: req.url ?? '', type: req.headers['content-type'] ?? '', body });
        res.writeHead(201).end();
      });
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/audit/checkpoints`;

    const dir = tempDir('sampleloop-checkpoint-cli-');
    const dataDir = join(dir, 'data');
    const configFile = writeConfig(dir, { dataDir }); // the default: the data dir's generated key, trusted
    const files = [modelFile(dir, 120, 'a'), modelFile(dir, 200, 'b'), modelFile(dir, 280, 'c')];
    expect((await cli('models', 'publish', files[0] as string, '--category', 'digits', '-c', configFile)).code).toBe(0);
    expect(existsSync(join(dataDir, GENERATED_SIGNING_KEY_FILE))).toBe(true);
    expect((await cli('models', 'publish', files[1] as string, '--category', 'digits', '-c', configFile)).code).toBe(0);
    const cpFile = join(dir, 'outside', 'checkpoint.json');
    mkdirSync(join(dir, 'outside'));
    const taken = await cli('models', 'checkpoint', '--out', cpFile, '--post', url, '-c', configFile);
    expect(taken.code).toBe(0);
    const checkpoint = JSON.parse(taken.stdout[0] as string) as { format: string; topic: string; heads: Array<{ category: string; sequence: number; version: string; recordHash: string }>; signer: string };
    const ledger = await withLog(configFile, (access) => readLedger(access));
    const head = ledger.heads.get('digits') as ModelVersion;
    expect(checkpoint).toMatchObject({ format: 'sampleloop-ledger-checkpoint/1', topic: 'models', heads: [{ category: 'digits', sequence: 2, version: '2', recordHash: head.recordHash }], signer: head.signer });
    expect(readFileSync(cpFile, 'utf8')).toBe(`${taken.stdout[0]}\n`);
    expect(received).toEqual([{ url: '/audit/checkpoints', type: 'application/json', body: taken.stdout[0] }]);

    expect((await cli('models', 'publish', files[2] as string, '--category', 'digits', '-c', configFile)).code).toBe(0);
    const extended = await cli('models', 'verify', '--checkpoint', cpFile, '-c', configFile);
    expect(extended).toMatchObject({ code: 0, stdout: ['ok: 3 version(s) of 1 category verified', expect.stringMatching(/^ok: the ledger extends the checkpoint of \S+Z \(1 head\(s\); 1 version\(s\) published since\)$/)] });

    // Whoever can write the data dir rewrites the history from v2 on, consistently, re-signed with the data dir's own key.
    await withLog(configFile, async (access, log) => {
      const signer = loadSigner(join(dataDir, GENERATED_SIGNING_KEY_FILE));
      let previous = (await readLedger(access)).byCategory.get('digits')?.[0]?.version;
      for (const offset of [1, 2]) {
        const key = recordKey(partitionPrefix(KEY_RECORD, 'models', 0), offset);
        const entry = decodeEntry(Buffer.from(log.db.get(key) as Buffer));
        const rewritten = signVersion(buildVersion(onnxInput(100 + offset * 17, { createdAt: T0 + offset, trainer: 'rewritten' }), previous as ModelVersion), signer);
        const schemaId = (entry.value as Buffer).readUInt32BE(1);
        log.db.write([{ type: 'put', key, value: encodeEntry({ ...entry, value: encodeFramed('ModelVersion', schemaId, rewritten) }) }]);
        previous = rewritten;
      }
    });
    const alone = await cli('models', 'verify', '-c', configFile);
    expect(alone).toMatchObject({ code: 0, stdout: ['ok: 3 version(s) of 1 category verified'] }); // consistent: nothing to see without the checkpoint
    const caught = await cli('models', 'verify', '--checkpoint', cpFile, '-c', configFile);
    expect(caught.code).toBe(1);
    expect(caught.stdout).toEqual([
      expect.stringMatching(
        new RegExp(`^FAIL checkpoint of \\S+Z: history-rewritten: the checkpoint's head digits version 2 \\(sequence 2, recordHash ${head.recordHash}\\) differs from the ledger's version 2 at that sequence \\(recordHash [0-9a-f]{64}\\)$`),
      ),
    ]);
    expect(caught.stderr).toContain(`error [SL_LEDGER]: the ledger does not extend the checkpoint ${cpFile}`);

    // An edited checkpoint is refused by its own signature.
    const edited = join(dir, 'edited.json');
    writeFileSync(edited, JSON.stringify({ ...checkpoint, heads: [{ ...checkpoint.heads[0], recordHash: 'e'.repeat(64) }] }));
    expect((await cli('models', 'verify', '--checkpoint', edited, '-c', configFile)).stdout[0]).toMatch(/: bad-signature: the checkpoint's signature does not verify/);
  });

  it('fails the command when the POST is refused, after printing the checkpoint', async () => {
    server = createServer((_req, res) => res.writeHead(503).end());
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const dir = tempDir('sampleloop-checkpoint-post-');
    const configFile = writeConfig(dir, { dataDir: join(dir, 'data') });
    expect((await cli('models', 'publish', modelFile(dir, 120, 'a'), '--category', 'digits', '-c', configFile)).code).toBe(0);
    const run = await cli('models', 'checkpoint', '--post', `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, '-c', configFile);
    expect(run.code).toBe(1);
    expect(run.stdout).toHaveLength(1);
    expect(run.stderr).toMatch(/POST of the checkpoint to http:\/\/127\.0\.0\.1:\d+\/ answered HTTP 503/);
  });
});

describe('ledgers from before signing', () => {
  it('are refused as unsigned by default, and accepted with a warning under allowUnsigned', async () => {
    const dir = tempDir('sampleloop-unsigned-cli-');
    const configFile = writeConfig(dir, { dataDir: join(dir, 'data') });
    await withLog(configFile, async (access) => {
      await publishVersion(access, onnxInput(120));
      await publishVersion(access, onnxInput(200, { createdAt: T0 + 1 }));
    });
    const strict = await cli('models', 'verify', '-c', configFile);
    expect(strict.code).toBe(1);
    expect(strict.stdout).toEqual([
      'FAIL digits version 1 (sequence 1, offset 0): unsigned: the version is not signed (models.trust.allowUnsigned is off)',
      expect.stringMatching(/^FAIL digits version 2 \(sequence 2, offset 1\): chain-broken: /),
    ]);
    const legacyFile = join(dir, 'legacy.json');
    copyFileSync(configFile, legacyFile);
    writeFileSync(legacyFile, JSON.stringify({ ...(JSON.parse(readFileSync(configFile, 'utf8')) as object), models: { trust: { allowUnsigned: true } } }));
    const legacy = await cli('models', 'verify', '-c', legacyFile);
    expect(legacy).toMatchObject({ code: 0, stdout: ['ok: 2 version(s) of 1 category verified'] });
    expect(legacy.stderr).toContain('warning: models.trust.allowUnsigned is on');
    expect(legacy.stderr).toContain('warning: 2 verified version(s) are unsigned');
    // the first signed version ends the category's unsigned era
    expect((await cli('models', 'publish', modelFile(dir, 280, 'c'), '--category', 'digits', '-c', legacyFile)).code).toBe(0);
    await withLog(configFile, async (access) => {
      const head = (await readLedger(access)).byCategory.get('digits')?.at(-1)?.version as ModelVersion;
      await access.produceAvro?.('models', 'ModelVersion', [{ key: 'digits', value: buildVersion(onnxInput(90, { createdAt: T0 + 9 }), head), timestamp: T0 }]);
    });
    const after = await cli('models', 'verify', '-c', legacyFile);
    expect(after.code).toBe(1);
    expect(after.stdout).toEqual([expect.stringMatching(/^FAIL digits version 4 \(sequence 4, offset 3\): unsigned: .*once a category has a signed version/)]);
  });
});
