import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../config/paths.js';
import { Command, CommanderError } from 'commander';
import { errorMessage, SampleloopError, UsageError } from '../engine/errors.js';
import { configFrom, withLogAccess, type CommonOptions } from './context.js';
import { registerDemoCommand } from './demo.js';
import { unsealDeadLetters, unsealFailure } from './unseal.js';
import { privacyKeyConfigured, privacyPolicyFor } from '../app/embedded.js';
import { GENERATED_KEY_FILE, type PrivacyPolicy } from '../processors/privacy.js';
import type { SampleloopConfig } from '../config/config.js';
import { runEngine } from './run.js';
import { inspect } from './inspect.js';
import { registerModelsCommand } from './models.js';
import { registerReplayCommand } from './replay.js';
import { registerArchiveCommand } from './archive.js';

function common(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'JSON configuration file (docs/configuration.md); SAMPLELOOP__a__b=value environment variables override it')
    .option('-d, --data-dir <dir>', 'embedded mode: where the local log and state live (overrides dataDir)');
}

function intOption(value: string, name: string): number {
  const n = Number.parseInt(value, 10);
  if (!Number.isFinite(n) || n < 0 || String(n) !== value.trim()) throw new CommanderError(2, 'sampleloop.usage', `${name} must be a non-negative integer, got "${value}"`);
  return n;
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

function readInput(file: string | undefined): string {
  try {
    return readFileSync(file ?? 0, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file === undefined ? 'standard input' : `--file ${file}`}: ${errorMessage(err)}`, { cause: err });
  }
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

  common(program.command('run').description('run the engine (embedded mode by default) until SIGTERM/SIGINT'))
    .option('--http-port <port>', 'port of /metrics, /healthz and the topic API (0 = any free port)')
    .action(async (opts: CommonOptions & { httpPort?: string }) => {
      const config = configFrom(opts);
      if (opts.httpPort !== undefined) config.http.port = intOption(opts.httpPort, '--http-port');
      await runEngine(config);
    });

  common(program.command('produce <topic>').description('append JSON-lines records (one JSON object per line) to a topic (embedded, or the Kafka cluster in mode "kafka")'))
    .option('-f, --file <path>', 'read records from this file instead of standard input')
    .option('--key-field <field>', 'field whose value becomes the record key', 'requestId')
    .option('--partitions <n>', 'partition count if the topic has to be created')
    .action(async (topic: string, opts: CommonOptions & { file?: string; keyField: string; partitions?: string }) => {
      const config = configFrom(opts);
      const text = readInput(opts.file);
      const partitions = opts.partitions !== undefined ? intOption(opts.partitions, '--partitions') : config.mode === 'kafka' ? config.kafka.partitions : config.embedded.partitions;
      const inputs = [config.topics.requests, config.topics.predictions, config.topics.feedback, config.topics.models];
      const result = await withLogAccess(config, async (access) => {
        const existed = inputs.includes(topic) || (await access.topics()).some((t) => t.topic === topic);
        return { ...(await access.produce(topic, text, { keyField: opts.keyField, createPartitions: partitions })), created: !existed };
      });
      out(JSON.stringify({ topic, appended: result.appended }));
      if (result.created) {
        // a mistyped topic name would otherwise take the records silently where nothing reads them
        process.stderr.write(`warning: topic "${topic}" did not exist and was created; the engine reads ${inputs.slice(0, 3).map((t) => `"${t}"`).join(', ')} (and the ledger "${inputs[3]}"), so check the name\n`);
      }
    });

  common(program.command('consume <topic>').description('print the records of a topic as JSON lines (values decoded)'))
    .option('--from <offset>', 'start at this offset in every partition', '0')
    .option('--partition <p>', 'only this partition')
    .option('--max <n>', 'print at most n records')
    .option('--metadata', 'print topic, partition, offset, timestamp, key and headers around each value')
    .option('--unseal', 'dead letters: decrypt sealed payloads with the privacy key (shown as payloadUnsealed)')
    .action(async (topic: string, opts: CommonOptions & { from: string; partition?: string; max?: string; metadata?: boolean; unseal?: boolean }) => {
      const config = configFrom(opts);
      const records = await withLogAccess(config, (access) =>
        access.read(topic, {
          from: intOption(opts.from, '--from'),
          ...(opts.partition !== undefined ? { partition: intOption(opts.partition, '--partition') } : {}),
          ...(opts.max !== undefined ? { max: intOption(opts.max, '--max') } : {}),
        }),
        { readOnly: true },
      );
      const unsealFailed = opts.unseal ? unsealDeadLetters(records, () => unsealPolicy(config)) : 0;
      for (const r of records) out(JSON.stringify(opts.metadata ? r : r.value));
      if (unsealFailed > 0) throw unsealFailure(unsealFailed);
    });

  common(program.command('inspect').description('topics with partitions, offsets and record counts; state stores with entries and bytes per task'))
    .option('--json', 'print JSON instead of a table')
    .action(async (opts: CommonOptions & { json?: boolean }) => {
      await inspect(configFrom(opts), { json: opts.json ?? false, out });
    });

  registerDemoCommand(program, out);
  registerModelsCommand(program, out);
  registerReplayCommand(program, out);
  registerArchiveCommand(program, out);

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
function unsealPolicy(config: SampleloopConfig): PrivacyPolicy {
  const generated = join(config.dataDir, GENERATED_KEY_FILE);
  const useGenerated = config.mode === 'embedded' && !privacyKeyConfigured(config) && existsSync(generated);
  return privacyPolicyFor(useGenerated ? { ...config, privacy: { ...config.privacy, keyFile: generated } } : config, false);
}
