/** The `models` subcommands that train, judge and take out models; their work loads when they run. */
import type { Command } from 'commander';
import { UsageError } from '../engine/errors.js';
import type { CommonOptions } from './context.js';
import { registerModelsTrainCommand } from './models-train.js';
import { withCommon } from './options.js';

function fileFormat(value: string | undefined): 'csv' | 'jsonl' | undefined {
  if (value === undefined || value === 'csv' || value === 'jsonl') return value;
  throw new UsageError(`--format must be csv or jsonl, got "${value}"`);
}

export function registerModelToolCommands(models: Command, out: (line: string) => void): void {
  registerModelsTrainCommand(models, out);

  withCommon(models.command('evaluate').description('accuracy, per-class precision / recall / F1, confusion matrix, log loss (and ROC AUC for two classes) of a version on a labeled file, run by onnxruntime from the ledger\'s bytes'))
    .requiredOption('--category <name>', 'the model\'s category')
    .option('--version <label>', 'the version to evaluate (default: the serving one)')
    .requiredOption('--from <file>', 'a labeled CSV or JSON-lines file (plain or gzip) with the model\'s feature columns')
    .option('--label <column>', 'the column holding the true label', 'label')
    .option('--format <csv|jsonl>', 'csv or jsonl (default: from the extension, else the first character)')
    .option('--delimiter <char>', 'CSV field delimiter', ',')
    .option('--json', 'print one JSON object instead of tables')
    .action(async (opts: CommonOptions & { category: string; version?: string; from: string; label: string; format?: string; delimiter: string; json?: boolean }) => {
      const format = fileFormat(opts.format);
      const { evaluateCommand } = await import('./models-evaluate.js');
      await evaluateCommand({ ...opts, ...(format ? { format } : { format: undefined }) }, out);
    });

  withCommon(models.command('export').description('write a version\'s ONNX bytes and the sidecar JSON (feature names, classes, ...) that `models publish` reads'))
    .requiredOption('--category <name>', 'the model\'s category')
    .option('--version <label>', 'the version to export (default: the serving one)')
    .requiredOption('--out <file.onnx>', 'where the ONNX bytes go; the sidecar goes beside it (model.onnx → model.json)')
    .action(async (opts: CommonOptions & { category: string; version?: string; out: string }) => {
      const { exportCommand } = await import('./models-export.js');
      await exportCommand(opts, out);
    });
}
