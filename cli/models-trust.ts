/**
 * `sampleloop models keygen | checkpoint | verify`: the ledger's keys, signed checkpoints of its heads,
 * and verification (integrity, signatures, trust policy, and optionally a checkpoint). docs/model-cluster.md.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { errorMessage, UsageError } from '../engine/errors.js';
import type { CheckedVersion, Checkpoint } from '../models/ledger.js';
import type { CommonOptions } from './context.js';

/** The ledger and the configuration load when an action runs: \`--help\` stays light (test/cli-startup.test.ts). */
async function deps(): Promise<typeof import('../models/ledger.js') & typeof import('./context.js')> {
  const [ledger, context] = await Promise.all([import('../models/ledger.js'), import('./context.js')]);
  return { ...ledger, ...context };
}

function withCommon(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'JSON configuration file (docs/configuration.md); SAMPLELOOP__a__b=value environment variables override it')
    .option('-d, --data-dir <dir>', 'embedded mode: where the local log and state live (overrides dataDir)');
}

export function registerModelTrustCommands(models: Command, out: (line: string) => void): void {
  withCommon(models.command('keygen').description('write a new Ed25519 key pair for signing model versions and checkpoints (private key mode 0600, public key <file>.pub)'))
    .option('--out <file>', 'private key file to write (default: models.signing.keyFile, else <data-dir>/model-signing.key); never overwritten')
    .option('--name <name>', 'name of the key in the printed trust-policy entry', 'publisher')
    .action(async (opts: CommonOptions & { out?: string; name: string }) => {
      const { configFrom, signingKeyFile, writeKeyPair } = await deps();
      const file = opts.out ?? signingKeyFile(configFrom(opts)).file;
      let written;
      try {
        written = writeKeyPair(file);
      } catch (err) {
        throw new UsageError(`${errorMessage(err)} (keygen never overwrites a key: choose another --out)`);
      }
      out(JSON.stringify({ privateKeyFile: written.privateKeyFile, publicKeyFile: written.publicKeyFile, keyId: written.keyId, publicKey: written.publicKey }));
      process.stderr.write(
        `sign with it: "models": {"signing": {"keyFile": ${JSON.stringify(written.privateKeyFile)}}}\n` +
          `trust it (in the configuration of every engine and of "models verify"): "models": {"trust": {"keys": [{"name": ${JSON.stringify(opts.name)}, "publicKey": ${JSON.stringify(written.publicKey)}, "categories": ["*"]}]}}\n`,
      );
    });

  withCommon(models.command('checkpoint').description("print a signed statement of every category's head (sequence, record hash, time); keep it outside the cluster and check it with \"models verify --checkpoint\""))
    .option('--out <file>', 'also write it to this file')
    .option('--post <url>', 'also POST it (application/json) to this URL, e.g. an audit store or a ticketing webhook')
    .action(async (opts: CommonOptions & { out?: string; post?: string }) => {
      const { buildCheckpoint, configFrom, ledgerSignerFor, readLedger, trustPolicyFor, withLogAccess } = await deps();
      const config = configFrom(opts);
      const trust = trustPolicyFor(config, { generate: false });
      const view = await withLogAccess(config, (access) => readLedger(access, config.topics.models, trust), { readOnly: true });
      const signer = ledgerSignerFor(config, { generate: false });
      if (view.failures.length > 0) {
        process.stderr.write(`warning: ${view.failures.length} ledger record(s) fail verification and are not part of any head (run "sampleloop models verify")\n`);
      }
      if (!trust.keys.some((k) => k.publicKey === signer.publicKey && k.retiredAt === undefined)) {
        process.stderr.write(`warning: the signing key ${signer.keyId} is not an active key of models.trust.keys: "models verify --checkpoint" will refuse this checkpoint (untrusted-signer) under this configuration\n`);
      }
      const checkpoint = buildCheckpoint(view.heads, config.topics.models, signer, Date.now());
      const text = JSON.stringify(checkpoint);
      out(text);
      if (opts.out !== undefined) {
        try {
          writeFileSync(opts.out, `${text}\n`);
        } catch (err) {
          throw new UsageError(`cannot write the checkpoint to --out ${opts.out}: ${errorMessage(err)} (it was printed above; check the path)`, { cause: err });
        }
      }
      if (opts.post !== undefined) await postCheckpoint(opts.post, text);
    });

  withCommon(models.command('verify').description("check every version's ONNX bytes, record hash, chain link and signature against the trust policy; exit 1 naming each version that fails"))
    .option('--checkpoint <file>', 'also prove that the ledger extends this checkpoint (from "models checkpoint"): no checkpointed head rewritten or lost')
    .action(async (opts: CommonOptions & { checkpoint?: string }) => {
      const { configFrom, LedgerError, parseCheckpoint, readLedger, trustPolicyFor, trustWarnings, verifyCheckpoint, withLogAccess } = await deps();
      const config = configFrom(opts);
      const checkpoint = opts.checkpoint !== undefined ? readCheckpoint(opts.checkpoint, parseCheckpoint) : undefined;
      for (const warning of trustWarnings(config)) process.stderr.write(`warning: ${warning}\n`);
      const trust = trustPolicyFor(config, { generate: false });
      const view = await withLogAccess(config, (access) => readLedger(access, config.topics.models, trust), { readOnly: true });
      for (const f of view.failures) out(`FAIL ${describeVersion(f)}: ${f.verification.ok ? '' : `${f.verification.code}: ${f.verification.reason}`}`);
      const problems = checkpoint ? verifyCheckpoint(checkpoint, view, trust, config.topics.models) : undefined;
      for (const p of problems?.problems ?? []) out(`FAIL checkpoint of ${new Date(checkpoint?.createdAt ?? 0).toISOString()}: ${p}`);
      const unsigned = view.versions.filter((v) => v.verification.ok && v.verification.signedBy === null).length;
      if (unsigned > 0) process.stderr.write(`warning: ${unsigned} verified version(s) are unsigned, accepted only because models.trust.allowUnsigned is on\n`);
      if (view.failures.length > 0 || (problems !== undefined && !problems.ok)) {
        const parts = [
          ...(view.failures.length > 0 ? [`${view.failures.length} of ${view.versions.length} ledger record(s) failed verification`] : []),
          ...(problems !== undefined && !problems.ok ? [`the ledger does not extend the checkpoint ${opts.checkpoint ?? ''}`] : []),
        ];
        throw new LedgerError(parts.join('; '));
      }
      out(`ok: ${view.versions.length} version(s) of ${view.byCategory.size} categor${view.byCategory.size === 1 ? 'y' : 'ies'} verified`);
      if (checkpoint && problems) {
        const newer = [...problems.newer.values()].reduce((a, b) => a + b, 0);
        out(`ok: the ledger extends the checkpoint of ${new Date(checkpoint.createdAt).toISOString()} (${checkpoint.heads.length} head(s); ${newer} version(s) published since)`);
      }
    });
}

function readCheckpoint(file: string, parseCheckpoint: (text: string) => Checkpoint): Checkpoint {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the checkpoint ${file}: ${errorMessage(err)}`);
  }
  try {
    return parseCheckpoint(text);
  } catch (err) {
    throw new UsageError(`${file}: ${errorMessage(err)}`);
  }
}

async function postCheckpoint(url: string, body: string): Promise<void> {
  const { LedgerError } = await deps();
  let response: Response;
  try {
    response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    throw new LedgerError(`could not POST the checkpoint to ${url}: ${errorMessage(err)}`, { cause: err });
  }
  if (!response.ok) throw new LedgerError(`POST of the checkpoint to ${url} answered HTTP ${response.status} ${response.statusText}`);
  await response.body?.cancel();
}

function describeVersion(v: CheckedVersion): string {
  if (!v.version) return `record at offset ${v.offset} (key ${v.category || 'none'})`;
  return `${v.category} version ${v.version.version} (sequence ${v.version.sequence}, offset ${v.offset})`;
}
