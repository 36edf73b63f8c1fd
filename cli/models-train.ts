/** `sampleloop models train`: a version of the built-in model from a labeled file or the category's samples. */
import type { Command } from 'commander';
import { UsageError } from '../engine/errors.js';
import type { CommonOptions } from './context.js';
import { listOption, withCommon } from './options.js';

interface TrainCliOptions extends CommonOptions {
  category: string;
  from: string;
  label: string;
  features?: string;
  id?: string;
  exclude?: string;
  format?: string;
  delimiter: string;
  dryRun?: boolean;
}

export function registerModelsTrainCommand(models: Command, out: (line: string) => void): void {
  withCommon(models.command('train').description('train the built-in model (logistic regression) on a labeled CSV / JSON-lines file or on the category\'s samples, and publish it when it passes the trainer\'s checks'))
    .requiredOption('--category <name>', 'category the model serves')
    .requiredOption('--from <file|samples>', 'a labeled CSV or JSON-lines file (plain or gzip), or "samples": the category\'s samples on the samples topic')
    .option('--label <column>', 'file: the column holding the label', 'label')
    .option('--features <a,b,...>', 'file: the feature columns (default: every other column whose values are all numbers)')
    .option('--id <column>', 'file: a column of unique row IDs; they decide the holdout (default: the line number)')
    .option('--exclude <a,b,...>', 'file: columns that are not features (when --features is not given)')
    .option('--format <csv|jsonl>', 'file: csv or jsonl (default: from the extension, else the first character)')
    .option('--delimiter <char>', 'file: CSV field delimiter', ',')
    .option('--dry-run', 'train and evaluate, print the outcome, publish nothing')
    .action(async (opts: TrainCliOptions) => {
      if (opts.format !== undefined && opts.format !== 'csv' && opts.format !== 'jsonl') throw new UsageError(`--format must be csv or jsonl, got "${opts.format}"`);
      const { trainCommand } = await import('./models-train-run.js');
      await trainCommand({ ...opts, ...(opts.features !== undefined ? { featureList: listOption(opts.features) } : {}), ...(opts.exclude !== undefined ? { excludeList: listOption(opts.exclude) } : {}) }, out);
    });
}
