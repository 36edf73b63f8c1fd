/** `sampleloop replay`: rebuild samples from archived gateway and business-system logs (docs/replay.md). */
import type { Command } from 'commander';
import { UsageError } from '../engine/errors.js';
import type { CommonOptions } from './context.js';

interface ReplayCliOptions extends CommonOptions {
  gateway: string[];
  business: string[];
  out: string;
  map?: string[];
  rejects?: string;
  strict?: boolean;
  since?: string;
  until?: string;
  delimiter: string;
  tempDir?: string;
  progress?: boolean;
  sort?: boolean;
  reorderBuffer?: string;
  worker: boolean;
}

function eventTime(value: string | undefined, flag: string, parseEventTime: (value: string) => number | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseEventTime(value);
  if (ms === undefined) throw new UsageError(`${flag} must be ISO-8601 (2026-01-05T09:00:00Z) or epoch milliseconds, got "${value}"`);
  return ms;
}

export function registerReplayCommand(program: Command, out: (line: string) => void): void {
  program
    .command('replay')
    .description('rebuild samples from archived gateway (predictions) and business (feedback) logs with the online join (docs/replay.md)')
    .option('-c, --config <file>', 'JSON configuration file (docs/configuration.md); SAMPLELOOP__a__b=value environment variables override it')
    .option('-d, --data-dir <dir>', 'the engine\'s data dir: its privacy.key makes replayed tokens equal online ones; default target of --out embedded')
    .option('--gateway <paths...>', 'gateway logs (predictions): JSON lines or CSV, plain or gzip; paths or quoted globs', [])
    .option('--business <paths...>', 'business-system logs (feedback): JSON lines or CSV, plain or gzip; paths or quoted globs', [])
    .requiredOption('--out <target>', 'embedded[:<data-dir>] | file:<path>.jsonl | file:<path>.avro | kafka (the cluster of the configuration\'s kafka section)')
    .option('--map <spec...>', 'rename columns: gateway.requestId=req_id,business.actualLabel=verified_value,... or a JSON mapping file')
    .option('--rejects <path>', 'where bad lines are listed (file, line, reason); default next to the output')
    .option('--strict', 'stop with exit code 1 at the first bad line')
    .option('--since <time>', 'replay predictions from this event time on (ISO-8601 or epoch ms)')
    .option('--until <time>', 'replay predictions before this event time (ISO-8601 or epoch ms)')
    .option('--delimiter <char>', 'CSV field delimiter', ',')
    .option('--temp-dir <dir>', 'where the scratch database goes: join state, samples, the on-disk sort (default replay.tempDir, else the OS temp dir)')
    .option('--sort', 'sort the archive on disk instead of merging the files by event time (for archives known not to be in time order)')
    .option('--reorder-buffer <records>', 'records per file the merge may put back in order before falling back to the on-disk sort (default 2000)')
    .option('--no-worker', 'read and validate the archive on the main thread instead of a worker thread')
    .option('--progress', 'print progress on stderr even when it is not a terminal')
    .option('--no-progress', 'never print progress')
    .action(async (opts: ReplayCliOptions) => {
      // loaded here, not at start-up: the replay pulls in RocksDB and the Kafka client (docs/cli.md, "Start-up")
      const [{ configFrom }, { createLogger }, { parseEventTime, parseMapping }, { runReplay }] = await Promise.all([
        import('./context.js'),
        import('../engine/logger.js'),
        import('../replay/input/mapping.js'),
        import('../replay/topology.js'),
      ]);
      const config = configFrom(opts);
      const since = eventTime(opts.since, '--since', parseEventTime);
      const until = eventTime(opts.until, '--until', parseEventTime);
      // Ctrl-C / SIGTERM stop the replay cleanly: the temporary directory is removed, the target left as it was.
      const interrupted = new AbortController();
      const stop = (): void => interrupted.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const reorderWindow = opts.reorderBuffer === undefined ? undefined : Number(opts.reorderBuffer);
      if (reorderWindow !== undefined && (!Number.isSafeInteger(reorderWindow) || reorderWindow < 1)) throw new UsageError(`--reorder-buffer must be a positive integer, got "${opts.reorderBuffer}"`);
      const summary = await runReplay({
        config,
        gateway: opts.gateway,
        business: opts.business,
        out: opts.out,
        mapping: parseMapping(opts.map ?? []),
        ...(opts.rejects !== undefined ? { rejects: opts.rejects } : {}),
        strict: opts.strict ?? false,
        ...(since !== undefined ? { since } : {}),
        ...(until !== undefined ? { until } : {}),
        delimiter: opts.delimiter,
        ...(opts.tempDir !== undefined ? { tempDir: opts.tempDir } : {}),
        order: opts.sort ? 'sort' : 'auto',
        ...(reorderWindow !== undefined ? { reorderWindow } : {}),
        worker: opts.worker,
        progress: { enabled: opts.progress ?? process.stderr.isTTY === true, stream: process.stderr },
        logger: createLogger({ level: config.log.level, name: 'sampleloop-replay' }),
        signal: interrupted.signal,
      }).finally(() => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      });
      out(JSON.stringify(summary));
    });
}
