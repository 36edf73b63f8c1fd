/** `sampleloop archive`: registration only; cli/archive.ts (Kafka and RocksDB clients) loads when the command runs. */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../engine/errors.js';
import type { CommonOptions } from './context.js';
import { withCommon } from './options.js';

interface ArchiveCliOptions extends CommonOptions {
  outDir: string;
  maxFileBytes?: string;
  raw?: boolean;
  fromStart?: boolean;
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1 || !/^\d+$/.test(value.trim())) throw new UsageError(`${flag} must be a positive integer, got "${value}"`);
  return n;
}

export function registerArchiveCommand(program: Command, out: (line: string) => void): void {
  withCommon(program.command('archive').description('write the predictions, feedback (and requests) topics as rolling gzip JSON-lines files that replay reads (docs/replay.md)'))
    .requiredOption('--out-dir <dir>', 'directory of the archive (created when missing); a later run continues it')
    .option('--max-file-bytes <n>', 'start a new file after this many uncompressed bytes (default replay.archiveMaxFileBytes)')
    .option('--raw', 'write attributes as the topics hold them instead of protecting sensitive ones')
    .option('--from-start', 'archive every record again instead of continuing after the previous run')
    .action(async (opts: ArchiveCliOptions) => {
      const [{ configFrom }, { runArchive }] = await Promise.all([import('./context.js'), import('./archive.js')]);
      const config = configFrom(opts);
      const summary = await runArchive(config, {
        outDir: resolve(opts.outDir),
        maxFileBytes: opts.maxFileBytes === undefined ? config.replay.archiveMaxFileBytes : positiveInt(opts.maxFileBytes, '--max-file-bytes'),
        raw: opts.raw ?? false,
        fromStart: opts.fromStart ?? false,
      });
      out(JSON.stringify(summary));
      for (const [topic, n] of Object.entries(summary.deleted)) {
        process.stderr.write(
          `warning: ${n} record(s) of ${topic} were deleted (embedded.inputRetentionMs, embedded.retentionMs) before archive read them; they are in no archive and replay cannot rebuild their samples. Archive more often than embedded.inputRetentionMs, or set it to null (docs/operations.md)\n`,
        );
      }
    });
}
