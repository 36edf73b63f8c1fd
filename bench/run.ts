/**
 * `npm run bench`: the join benchmark, then the RocksDB package comparison, then a summary.
 * Accepts the flags of both (`--predictions`, `--chunk`, `--formats`, `--ops`, `--rounds`, `--no-write`, ...)
 * and `--only join|rocksdb`.
 */
import { parseArgs } from 'node:util';
import { UsageError } from '../engine/errors.js';
import { joinOptionsFromArgs, runJoinBench, type JoinBenchResult } from './join.js';
import { isMainModule } from './measure.js';
import { rocksOptionsFromArgs, runRocksdbChoice, type RocksChoiceResult } from './rocksdb-choice.js';

export interface BenchSummary {
  join: JoinBenchResult | null;
  rocksdb: RocksChoiceResult | null;
}

export function summaryLines(summary: BenchSummary): string[] {
  const lines = ['== summary =='];
  if (summary.join) {
    const j = summary.join;
    for (const r of j.ratios) {
      const verdict = r.joinOverLimitCpu >= j.target ? `meets the target ${j.target}` : `${(j.target / r.joinOverLimitCpu).toFixed(1)}x short of the target ${j.target}`;
      lines.push(
        `join (${r.format}, ${j.traffic.predictions.toLocaleString('en-US')} + ${j.traffic.feedback.toLocaleString('en-US')}): embedded/limit = ${r.joinOverLimit.toFixed(3)} wall clock, ` +
          `${r.joinOverLimitCpu.toFixed(3)} per CPU-second, ${r.joinOverLimitMainThread.toFixed(3)} per main-thread CPU-second; ${verdict} (per CPU-second)`,
      );
    }
    for (const r of j.join) {
      lines.push(`join (${r.format}) latency p50 ${r.latencyMs.p50.toFixed(1)} ms, p99 ${r.latencyMs.p99.toFixed(1)} ms (chunks of ${j.options.chunk}); peak RSS ${(r.memory.peakRssBytes / 2 ** 20).toFixed(0)} MiB`);
    }
  }
  if (summary.rocksdb) {
    const ratios = summary.rocksdb.ratios.map((r) => `${r.phase} ${r.engineOverClassic.toFixed(2)}x`).join(', ');
    lines.push(`rocksdb: @nxtedition/rocksdb (sync, as the engine uses it) over rocksdb 5.2.1 (ops/s, median of ${summary.rocksdb.workload.rounds}): ${ratios}`);
  }
  return lines;
}

export async function runAll(args: readonly string[]): Promise<BenchSummary> {
  const { values } = parseArgs({ args: [...args], strict: false, options: { only: { type: 'string' } } });
  const only = values.only;
  if (only !== undefined && only !== 'join' && only !== 'rocksdb') throw new UsageError(`--only accepts join or rocksdb, got "${String(only)}"`);
  const summary: BenchSummary = { join: null, rocksdb: null };
  if (only === undefined || only === 'join') {
    summary.join = await runJoinBench(joinOptionsFromArgs(args));
    console.log('');
  }
  if (only === undefined || only === 'rocksdb') {
    summary.rocksdb = await runRocksdbChoice(rocksOptionsFromArgs(args));
    console.log('');
  }
  for (const line of summaryLines(summary)) console.log(line);
  return summary;
}

if (isMainModule(import.meta.url)) {
  runAll(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
