/** `sampleloop export samples`: the training set out, as Parquet, CSV or JSON lines (docs/cli.md). */
import type { Command } from 'commander';
import { UsageError } from '../engine/errors.js';
import type { CommonOptions } from './context.js';
import { withCommon } from './options.js';

export interface ExportSamplesOptions extends CommonOptions {
  out: string;
  category?: string;
  snapshot?: string;
  format?: string;
}

export function registerExportCommand(program: Command, out: (line: string) => void): void {
  const exportCommand = program.command('export').description('take data out of sampleloop in the formats ML tools read');
  withCommon(exportCommand.command('samples').description('the latest revision of every sample (or exactly the samples of a retrain trigger\'s snapshot) as Parquet, CSV or JSON lines'))
    .requiredOption('--out <file>', 'where to write (the format follows the extension: .parquet, .csv, .jsonl; else --format)')
    .option('--category <name>', 'only this category')
    .option('--snapshot <json>', 'the samples a trainer saw: a retrain-triggers record as JSON (or its `snapshot` with --category)')
    .option('--format <parquet|csv|jsonl>', 'output format (default: from --out\'s extension, else parquet)')
    .action(async (opts: ExportSamplesOptions) => {
      const format = opts.format ?? (/\.csv$/i.test(opts.out) ? 'csv' : /\.(jsonl|ndjson|json)$/i.test(opts.out) ? 'jsonl' : 'parquet');
      if (format !== 'parquet' && format !== 'csv' && format !== 'jsonl') throw new UsageError(`--format must be parquet, csv or jsonl, got "${format}"`);
      const { exportSamples } = await import('./export-samples.js');
      await exportSamples({ ...opts, format }, out);
    });
}
