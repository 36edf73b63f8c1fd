/**
 * `sampleloop produce <topic>`: JSON lines as they are (one record per line), or, for the requests
 * topic, a CSV / JSON-lines table turned into one Request per row (docs/cli.md, "produce").
 */
import type { Command } from 'commander';
import { UsageError } from '../engine/errors.js';
import type { CommonOptions } from './context.js';
import { intOption, listOption, withCommon } from './options.js';

interface ProduceOptions extends CommonOptions {
  file?: string;
  keyField: string;
  partitions?: string;
  format?: string;
  category?: string;
  id?: string;
  idPrefix?: string;
  features?: string;
  attributes?: string;
  ignore?: string;
  timestampColumn: string;
  source: string;
  delimiter: string;
  progress?: boolean;
}

export function registerProduceCommand(program: Command, out: (line: string) => void): void {
  withCommon(program.command('produce <topic>').description('append records to a topic: JSON lines as they are, or (topic requests, --format csv) one Request per CSV row (embedded, or the Kafka cluster in mode "kafka")'))
    .option('-f, --file <path>', 'read records from this file (plain or gzip) instead of standard input')
    .option('--format <jsonl|csv|table>', 'jsonl: one record per JSON line, unchanged; csv / table: one Request per row of a CSV (table: of a flat JSON-lines file) — topic requests only (default: csv for *.csv[.gz], else jsonl)')
    .option('--key-field <field>', 'field whose value becomes the record key', 'requestId')
    .option('--partitions <n>', 'partition count if the topic has to be created')
    .option('--category <name>', 'csv: the category of every request (default: the "category" column)')
    .option('--id <column>', 'csv: the column holding the request ID (default "requestId" when the file has it, else generated: <first 16 hex of the file\'s SHA-256>-<line>)')
    .option('--id-prefix <text>', 'csv: prefix of generated request IDs instead of the file hash')
    .option('--features <a,b,...>', 'csv: the feature columns (default: every other column, numeric cells only)')
    .option('--attributes <a,b,...>', 'csv: columns that become attributes (text), e.g. name,phone,channel')
    .option('--ignore <a,b,...>', 'csv: columns to leave out, e.g. the label of a labeled file')
    .option('--timestamp-column <column>', 'csv: request time (epoch ms or ISO-8601) when the file has the column; else now', 'timestamp')
    .option('--source <name>', 'csv: the requests\' source field', 'file')
    .option('--delimiter <char>', 'csv field delimiter', ',')
    .option('--progress', 'print progress on stderr even for small files')
    .option('--no-progress', 'never print progress')
    .action(async (topic: string, opts: ProduceOptions) => {
      const [{ configFrom, withLogAccess }, { produceTable, produceJsonLines, tableFormat }] = await Promise.all([import('./context.js'), import('./produce-run.js')]);
      const config = configFrom(opts);
      const partitions = opts.partitions !== undefined ? intOption(opts.partitions, '--partitions') : config.mode === 'kafka' ? config.kafka.partitions : config.embedded.partitions;
      const inputs = [config.topics.requests, config.topics.predictions, config.topics.feedback, config.topics.models];
      const format = tableFormat(opts.format, opts.file);
      if (format !== 'jsonl' && topic !== config.topics.requests) {
        throw new UsageError(`--format ${format} makes Requests and writes only to the requests topic ("${config.topics.requests}"), not "${topic}"; give other topics JSON lines`);
      }
      if (format !== 'jsonl' && opts.file === undefined) throw new UsageError(`--format ${format} needs --file`);
      const result = await withLogAccess(config, async (access) => {
        const existed = inputs.includes(topic) || (await access.topics()).some((t) => t.topic === topic);
        const produced =
          format === 'jsonl'
            ? await produceJsonLines(access, topic, opts.file, { keyField: opts.keyField, createPartitions: partitions, progress: opts.progress })
            : await produceTable(access, topic, opts.file as string, {
                format,
                createPartitions: partitions,
                delimiter: opts.delimiter,
                timestampColumn: opts.timestampColumn,
                source: opts.source,
                progress: opts.progress,
                ...(opts.category !== undefined ? { category: opts.category } : {}),
                ...(opts.id !== undefined ? { id: opts.id } : {}),
                ...(opts.idPrefix !== undefined ? { idPrefix: opts.idPrefix } : {}),
                ...(opts.features !== undefined ? { features: listOption(opts.features) } : {}),
                ...(opts.attributes !== undefined ? { attributes: listOption(opts.attributes) } : {}),
                ...(opts.ignore !== undefined ? { ignore: listOption(opts.ignore) } : {}),
              });
        return { ...produced, created: !existed };
      });
      out(JSON.stringify({ topic, appended: result.appended, ...(result.skipped !== undefined ? { skipped: result.skipped } : {}) }));
      if (result.created) {
        // a mistyped topic name would otherwise take the records silently where nothing reads them
        process.stderr.write(`warning: topic "${topic}" did not exist and was created; the engine reads ${inputs.slice(0, 3).map((t) => `"${t}"`).join(', ')} (and the ledger "${inputs[3]}"), so check the name\n`);
      }
    });
}
