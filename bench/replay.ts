/**
 * Replay benchmark: records/s of `replay` (archive → samples file, end to end) against the raw
 * speed of reading + gunzipping + JSON.parse of the same files. The ratio replay / raw is the
 * overhead of everything replay adds (validation, the on-disk event-time sort, the join with its
 * RocksDB state, writing the outputs); the target is >= 0.7.
 *
 * Run: `npm run build && node dist/bench/replay.js [--predictions N] [--no-write]`
 * (results in bench/results/replay.json and, unless --no-write, appended to docs/benchmarks.md).
 */
import { appendFileSync, createReadStream, createWriteStream, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createGunzip, createGzip } from 'node:zlib';
import { parseConfig } from '../engine/config.js';
import { packageRoot } from '../engine/paths.js';
import { runReplay, type ReplaySummary } from '../topologies/replay.js';
import { formatTable, isMainModule, machineInfo, rate, resultPath, writeResult, type MachineInfo } from './measure.js';
import { generateBenchTraffic } from './traffic.js';

export const TARGET_RATIO = 0.7;

export interface ReplayBenchResult {
  date: string;
  machine: MachineInfo;
  loadAverage: number;
  predictions: number;
  records: number;
  archiveBytes: { gzip: number; uncompressed: number };
  raw: { seconds: number; cpuSeconds: number; recordsPerSecond: number; recordsPerCpuSecond: number };
  replay: { seconds: number; cpuSeconds: number; recordsPerSecond: number; recordsPerCpuSecond: number; phases: ReplaySummary['phases']; samples: number; unmatched: number };
  /** replay / raw, wall clock. */
  ratio: number;
  /** replay / raw per CPU-second (every thread of the process): the figure to read on a shared machine. */
  ratioCpu: number;
  target: number;
}

/** Writes the traffic as one gateway and one business file (gzip JSON lines); returns the uncompressed bytes. */
async function writeArchive(dir: string, predictions: number): Promise<{ gateway: string; business: string; uncompressed: number }> {
  const traffic = generateBenchTraffic({ predictions, formats: ['json'] });
  const open = (name: string): { gzip: ReturnType<typeof createGzip>; done: Promise<unknown> } => {
    const gzip = createGzip();
    const file = createWriteStream(join(dir, name));
    gzip.pipe(file);
    return { gzip, done: once(file, 'finish') };
  };
  const gateway = open('gateway-000001.jsonl.gz');
  const business = open('business-000001.jsonl.gz');
  let uncompressed = 0;
  for (let e = 0; e < traffic.events; e++) {
    const line = Buffer.concat([traffic.bytes('json', e), Buffer.from('\n')]);
    uncompressed += line.length;
    const target = traffic.kind(e) === 'prediction' ? gateway.gzip : business.gzip;
    if (!target.write(line)) await once(target, 'drain');
  }
  gateway.gzip.end();
  business.gzip.end();
  await Promise.all([gateway.done, business.done]);
  return { gateway: join(dir, 'gateway-000001.jsonl.gz'), business: join(dir, 'business-000001.jsonl.gz'), uncompressed };
}

/** The floor: stream, gunzip, split lines, JSON.parse each — nothing else. */
export async function rawRead(paths: readonly string[]): Promise<{ records: number; seconds: number; cpuSeconds: number }> {
  const started = performance.now();
  const cpu = process.cpuUsage();
  let records = 0;
  for (const path of paths) {
    let carry = '';
    for await (const chunk of createReadStream(path).pipe(createGunzip()) as AsyncIterable<Buffer>) {
      const text = carry + chunk.toString('utf8');
      const lines = text.split('\n');
      carry = lines.pop() ?? '';
      for (const line of lines) {
        if (line.length === 0) continue;
        JSON.parse(line);
        records++;
      }
    }
    if (carry.length > 0) {
      JSON.parse(carry);
      records++;
    }
  }
  return { records, seconds: (performance.now() - started) / 1000, cpuSeconds: cpuSecondsSince(cpu) };
}

function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

export async function runReplayBench(options: { predictions: number; write: boolean }): Promise<ReplayBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'sampleloop-bench-replay-'));
  try {
    const archive = await writeArchive(dir, options.predictions);
    const files = [archive.gateway, archive.business];
    await rawRead(files); // warm the page cache and the JIT
    const raw = await rawRead(files);
    writeFileSync(join(dir, 'bench.key'), 'ab'.repeat(32));
    const config = parseConfig({ dataDir: join(dir, 'data'), log: { level: 'silent' }, privacy: { keyFile: join(dir, 'bench.key'), keyEnv: 'SAMPLELOOP_BENCH_UNUSED_KEY' } });
    const cpu = process.cpuUsage();
    const summary = await runReplay({ config, gateway: [archive.gateway], business: [archive.business], out: `file:${join(dir, 'samples.jsonl')}` });
    const replayCpu = cpuSecondsSince(cpu);
    const records = summary.records.gateway + summary.records.business;
    if (records !== raw.records) throw new Error(`replay read ${records} records, the raw reader ${raw.records}`);
    const result: ReplayBenchResult = {
      date: new Date().toISOString(),
      machine: machineInfo(),
      loadAverage: loadavg()[0] ?? 0,
      predictions: options.predictions,
      records,
      archiveBytes: { gzip: files.reduce((s, f) => s + statSync(f).size, 0), uncompressed: archive.uncompressed },
      raw: { seconds: raw.seconds, cpuSeconds: raw.cpuSeconds, recordsPerSecond: raw.records / raw.seconds, recordsPerCpuSecond: raw.records / raw.cpuSeconds },
      replay: {
        seconds: summary.seconds,
        cpuSeconds: replayCpu,
        recordsPerSecond: summary.recordsPerSecond,
        recordsPerCpuSecond: records / replayCpu,
        phases: summary.phases,
        samples: summary.written.samples,
        unmatched: summary.written.unmatched,
      },
      ratio: summary.recordsPerSecond / (raw.records / raw.seconds),
      ratioCpu: records / replayCpu / (raw.records / raw.cpuSeconds),
      target: TARGET_RATIO,
    };
    writeResult(resultPath('replay'), result);
    if (options.write) appendToDocs(result);
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function replayTable(r: ReplayBenchResult): string {
  const perPhase = (seconds: number): string => rate(r.records / seconds);
  return formatTable(
    ['measurement', 'seconds', 'records/s', 'CPU-seconds', 'records/CPU-s'],
    [
      ['raw: read + gunzip + JSON.parse', r.raw.seconds.toFixed(2), rate(r.raw.recordsPerSecond), r.raw.cpuSeconds.toFixed(2), rate(r.raw.recordsPerCpuSecond)],
      ['replay, end to end', r.replay.seconds.toFixed(2), rate(r.replay.recordsPerSecond), r.replay.cpuSeconds.toFixed(2), rate(r.replay.recordsPerCpuSecond)],
      ['  1. read, validate, sort on disk', r.replay.phases.read.toFixed(2), perPhase(r.replay.phases.read), '', ''],
      ['  2. join (samples topology)', r.replay.phases.join.toFixed(2), perPhase(r.replay.phases.join), '', ''],
      ['  3. write outputs', r.replay.phases.write.toFixed(2), perPhase(r.replay.phases.write), '', ''],
    ],
  );
}

function appendToDocs(r: ReplayBenchResult): void {
  const path = join(packageRoot(), 'docs', 'benchmarks.md');
  if (!existsSync(path)) writeFileSync(path, '# Benchmarks\n');
  const m = r.machine;
  const text = [
    '',
    `## Replay (bench/replay.ts), ${r.date.slice(0, 10)}`,
    '',
    `${r.predictions.toLocaleString('en-US')} predictions + their feedback (${r.records.toLocaleString('en-US')} records, ` +
      `${(r.archiveBytes.uncompressed / 1e6).toFixed(1)} MB of JSON lines, ${(r.archiveBytes.gzip / 1e6).toFixed(1)} MB gzip), ` +
      `replayed to \`file:samples.jsonl\`; ${m.nproc} × ${m.cpuModel}, Node ${m.node}, load average ${r.loadAverage.toFixed(1)} at the start.`,
    '',
    '```',
    replayTable(r),
    '```',
    '',
    `ratio replay / raw = **${r.ratio.toFixed(3)}** wall clock, **${r.ratioCpu.toFixed(3)}** per CPU-second (target >= ${r.target}): ` +
      `${Math.max(r.ratio, r.ratioCpu) >= r.target ? 'met' : 'not met'}. ` +
      `${r.replay.samples.toLocaleString('en-US')} samples, ${r.replay.unmatched.toLocaleString('en-US')} unmatched.`,
    '',
  ].join('\n');
  appendFileSync(path, text);
}

if (isMainModule(import.meta.url)) {
  const { values } = parseArgs({ options: { predictions: { type: 'string', default: '50000' }, 'no-write': { type: 'boolean', default: false } } });
  const predictions = Number(values.predictions);
  if (!Number.isSafeInteger(predictions) || predictions < 1) throw new Error(`--predictions must be a positive integer, got ${values.predictions}`);
  runReplayBench({ predictions, write: !values['no-write'] }).then(
    (r) => {
      console.log(replayTable(r));
      console.log(`ratio replay / raw = ${r.ratio.toFixed(3)} wall clock, ${r.ratioCpu.toFixed(3)} per CPU-second (target >= ${r.target})`);
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
