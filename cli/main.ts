import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../config/paths.js';
import { Command, CommanderError } from 'commander';
import { SampleloopError } from '../engine/errors.js';
import type { CommonOptions } from './context.js';
import type { SampleloopConfig } from '../config/config.js';
import type { PrivacyPolicy } from '../processors/privacy.js';
import { registerDemoCommand } from './demo-command.js';
import { registerModelsCommand } from './models.js';
import { registerReplayCommand } from './replay.js';
import { registerArchiveCommand } from './archive-command.js';
import { registerProduceCommand } from './produce.js';
import { registerExportCommand } from './export.js';
import { intOption, withCommon } from './options.js';

// Only light modules above: each action imports what it needs (RocksDB, onnxruntime, librdkafka, the
// configuration schema) when it runs, so `--help` and `--version` answer at once (docs/cli.md, "Start-up").

function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

export function buildProgram(out: (line: string) => void): Command {
  const program = new Command('sampleloop')
    .description('Closed-loop sample generation: predictions + business feedback → labeled, privacy-safe training samples.')
    .version(packageVersion(), '-V, --version', 'print the version')
    // Program options only before the command: `models publish --version <v>` is the command's own option.
    .enablePositionalOptions()
    .showHelpAfterError('(run with --help for usage)')
    // Before any subcommand exists: subcommands copy it, so their parse errors also come back to main() (exit 2).
    .exitOverride();

  withCommon(program.command('run').description('run the engine (embedded mode by default) until SIGTERM/SIGINT'))
    .option('--http-port <port>', 'port of /metrics, /healthz and the topic API (0 = any free port)')
    .action(async (opts: CommonOptions & { httpPort?: string }) => {
      const [{ configFrom }, { runEngine }] = await Promise.all([import('./context.js'), import('./run.js')]);
      const config = configFrom(opts);
      if (opts.httpPort !== undefined) config.http.port = intOption(opts.httpPort, '--http-port');
      await runEngine(config);
    });

  registerProduceCommand(program, out);

  withCommon(program.command('consume <topic>').description('print the records of a topic as JSON lines (values decoded)'))
    .option('--from <offset>', 'start at this offset in every partition', '0')
    .option('--partition <p>', 'only this partition')
    .option('--max <n>', 'print at most n records')
    .option('--metadata', 'print topic, partition, offset, timestamp, key and headers around each value')
    .option('--unseal', 'dead letters: decrypt sealed payloads with the privacy key (shown as payloadUnsealed)')
    .action(async (topic: string, opts: CommonOptions & { from: string; partition?: string; max?: string; metadata?: boolean; unseal?: boolean }) => {
      const [{ configFrom, withLogAccess }, { unsealDeadLetters, unsealFailure }] = await Promise.all([import('./context.js'), import('./unseal.js')]);
      const config = configFrom(opts);
      const records = await withLogAccess(config, (access) =>
        access.read(topic, {
          from: intOption(opts.from, '--from'),
          ...(opts.partition !== undefined ? { partition: intOption(opts.partition, '--partition') } : {}),
          ...(opts.max !== undefined ? { max: intOption(opts.max, '--max') } : {}),
        }),
        { readOnly: true },
      );
      const policy = opts.unseal ? await unsealPolicy(config) : undefined;
      const unsealFailed = policy ? unsealDeadLetters(records, policy) : 0;
      for (const r of records) out(JSON.stringify(opts.metadata ? r : r.value));
      if (unsealFailed > 0) throw unsealFailure(unsealFailed);
    });

  withCommon(program.command('inspect').description('topics with partitions, offsets and record counts; state stores with entries and bytes per task'))
    .option('--json', 'print JSON instead of a table')
    .action(async (opts: CommonOptions & { json?: boolean }) => {
      const [{ configFrom }, { inspect }] = await Promise.all([import('./context.js'), import('./inspect.js')]);
      await inspect(configFrom(opts), { json: opts.json ?? false, out });
    });

  registerDemoCommand(program, out);
  registerModelsCommand(program, out);
  registerReplayCommand(program, out);
  registerArchiveCommand(program, out);
  registerExportCommand(program, out);

  return program;
}

/** Entry point of bin/sampleloop.js; returns the process exit code. */
export async function main(argv: string[], out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<number> {
  const program = buildProgram(out);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) return 0;
      if (err.code === 'sampleloop.usage') process.stderr.write(`error: ${err.message}\n`);
      // Unknown options and commands, missing arguments: all usage errors (docs/cli.md).
      return 2;
    }
    if (err instanceof SampleloopError) {
      process.stderr.write(`error [${err.code}]: ${err.message}\n`);
      return err.code === 'SL_CONFIG' || err.code === 'SL_USAGE' ? 2 : 1;
    }
    throw err;
  }
}

/**
 * The privacy policy `consume --unseal` opens dead letters with: the configured key, or the one the
 * engine generated in the data dir. A reading command never generates a key (it could only fail to
 * open, and the next `run` would tokenize with it).
 */
async function unsealPolicy(config: SampleloopConfig): Promise<() => PrivacyPolicy> {
  const [{ existsSync }, { privacyKeyConfigured, privacyPolicyFor }, { GENERATED_KEY_FILE }] = await Promise.all([import('node:fs'), import('../app/embedded.js'), import('../processors/privacy.js')]);
  const generated = join(config.dataDir, GENERATED_KEY_FILE);
  const useGenerated = config.mode === 'embedded' && !privacyKeyConfigured(config) && existsSync(generated);
  return () => privacyPolicyFor(useGenerated ? { ...config, privacy: { ...config.privacy, keyFile: generated } } : config, false);
}
