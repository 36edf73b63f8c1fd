/**
 * Replay benchmark: records/s of `replay` (archive → samples file, end to end) against the raw
 * speed of reading + gunzipping + JSON.parse of the same files. The ratio replay / raw is the
 * overhead of everything replay adds (validation, the on-disk event-time sort, the join with its
 * RocksDB state, writing the outputs); the target is >= 0.7.
 *
 * Run: `npm run build && node dist/bench/replay.js [--predictions N] [--transfer packed|clone] [--no-worker] [--sort] [--no-write]`
 * (results in bench/results/replay.json and, unless --no-write, appended to docs/benchmarks.md).
 */
import { appendFileSync, createReadStream, createWriteStream, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createGunzip, createGzip } from 'node:zlib';
import { parseConfig } from '../config/config.js';
import { packageRoot } from '../config/paths.js';
import type { TransferMode } from '../replay/input/batch.js';
import { buildSample } from '../processors/labeling.js';
import { describeFile } from '../replay/input/files.js';
import { emptyMapping } from '../replay/input/mapping.js';
import type { ReadSpec } from '../replay/input/records.js';
import { openArchiveSource } from '../replay/input/source.js';
import { REORDER_WINDOW, runReplay, type ReplaySummary } from '../replay/topology.js';
import { cpuDelta, formatTable, isMainModule, machineInfo, rate, resultPath, threadCpuSeconds, writeResult, type MachineInfo } from './measure.js';
import type { Feedback, Prediction } from '../schemas/types.js';
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
  /** `floorReplay`: read + parse + pair + encode and write one sample per pair, nothing else (one thread). */
  floor: { seconds: number; cpuSeconds: number; recordsPerSecond: number; samples: number; ratio: number };
  replay: {
    seconds: number;
    cpuSeconds: number;
    /** CPU of the main thread alone (the one running the topology). */
    mainCpuSeconds: number;
    recordsPerSecond: number;
    recordsPerCpuSecond: number;
    phases: ReplaySummary['phases'];
    order: ReplaySummary['order'];
    readerThread: boolean;
    transfer: TransferMode;
    samples: number;
    unmatched: number;
  };
  /** Main-thread cost of receiving the records from the reader thread, per transfer mode (no topology). */
  transfer: Array<{ mode: TransferMode; seconds: number; mainCpuSeconds: number; cpuSeconds: number; mainMicrosPerRecord: number }>;
  loadAverageEnd: number;
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

/**
 * The least any replay must do beyond `rawRead`, with no join logic, validation or privacy: pair each
 * feedback line with its prediction by request ID (an in-memory map), encode one LabeledSample per pair
 * as a JSON line and write it. Replay cannot beat this on one thread; the ratio floor / raw bounds its ratio.
 */
export async function floorReplay(paths: { gateway: string; business: string }, outPath: string): Promise<{ records: number; samples: number; seconds: number; cpuSeconds: number }> {
  const started = performance.now();
  const cpu = process.cpuUsage();
  const predictions = new Map<string, Prediction>();
  const out = createWriteStream(outPath);
  let records = 0;
  let samples = 0;
  const lines: string[] = [];
  const onLine = (line: string, side: 'gateway' | 'business'): void => {
    records++;
    if (side === 'gateway') {
      const p = JSON.parse(line) as Prediction;
      predictions.set(p.requestId, p);
      return;
    }
    const f = JSON.parse(line) as Feedback;
    const p = predictions.get(f.requestId);
    if (!p) return;
    predictions.delete(f.requestId);
    const sample = buildSample(p, { label: f.actualLabel ?? p.predictedLabel, labelSource: 'CONFIRMED' }, f.timestamp, 0, 'replay');
    samples++;
    lines.push(JSON.stringify(sample));
  };
  for (const side of ['gateway', 'business'] as const) {
    let carry = '';
    for await (const chunk of createReadStream(paths[side]).pipe(createGunzip()) as AsyncIterable<Buffer>) {
      const split = (carry + chunk.toString('utf8')).split('\n');
      carry = split.pop() ?? '';
      for (const line of split) if (line.length > 0) onLine(line, side);
      if (lines.length > 0 && !out.write(`${lines.join('\n')}\n`)) await once(out, 'drain');
      lines.length = 0;
    }
    if (carry.length > 0) onLine(carry, side);
  }
  if (lines.length > 0) out.write(`${lines.join('\n')}\n`);
  out.end();
  await once(out, 'finish');
  return { records, samples, seconds: (performance.now() - started) / 1000, cpuSeconds: cpuSecondsSince(cpu) };
}

function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

/** Reads the archive through the reader thread and only receives the records: the main thread's share of moving them. */
export async function measureTransfer(paths: { gateway: string; business: string }, mode: TransferMode): Promise<ReplayBenchResult['transfer'][number]> {
  const spec: ReadSpec = {
    files: [{ ...describeFile(paths.gateway), side: 'gateway' }, { ...describeFile(paths.business), side: 'business' }],
    mapping: emptyMapping(),
    delimiter: ',',
    maxRecordBytes: 1 << 20,
    ranges: { predictions: { from: 0, to: Number.MAX_SAFE_INTEGER }, feedback: { from: 0, to: Number.MAX_SAFE_INTEGER } },
    strict: false,
  };
  const started = performance.now();
  const cpu = process.cpuUsage();
  const threads = threadCpuSeconds();
  const source = openArchiveSource(spec, { kind: 'merge', window: REORDER_WINDOW }, { worker: true, transfer: mode, batchSize: 1000 });
  let records = 0;
  let bytes = 0;
  try {
    for await (const batch of source.batches()) {
      for (const r of batch.records) bytes += r.key.length + r.value.length;
      records += batch.records.length;
    }
  } finally {
    await source.close();
  }
  const main = cpuDelta(threads, threadCpuSeconds()).main ?? 0;
  if (bytes === 0) throw new Error('no records received');
  return { mode, seconds: (performance.now() - started) / 1000, mainCpuSeconds: main, cpuSeconds: cpuSecondsSince(cpu), mainMicrosPerRecord: (main * 1e6) / records };
}

export async function runReplayBench(options: { predictions: number; write: boolean; transfer: TransferMode; worker: boolean; sort: boolean }): Promise<ReplayBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'sampleloop-bench-replay-'));
  try {
    const archive = await writeArchive(dir, options.predictions);
    const files = [archive.gateway, archive.business];
    await rawRead(files); // warm the page cache and the JIT
    const raw = await rawRead(files);
    await floorReplay(archive, join(dir, 'floor.jsonl')); // warm-up, as for rawRead
    const floor = await floorReplay(archive, join(dir, 'floor.jsonl'));
    if (floor.records !== raw.records) throw new Error(`the floor read ${floor.records} records, the raw reader ${raw.records}`);
    writeFileSync(join(dir, 'bench.key'), 'ab'.repeat(32));
    const config = parseConfig({ dataDir: join(dir, 'data'), log: { level: 'silent' }, privacy: { keyFile: join(dir, 'bench.key'), keyEnv: 'SAMPLELOOP_BENCH_UNUSED_KEY' } });
    const transfer = [];
    for (const mode of ['packed', 'clone', 'packed', 'clone'] as const) transfer.push(await measureTransfer(archive, mode));
    const cpu = process.cpuUsage();
    const threads = threadCpuSeconds();
    const summary = await runReplay({
      config,
      gateway: [archive.gateway],
      business: [archive.business],
      out: `file:${join(dir, 'samples.jsonl')}`,
      transfer: options.transfer,
      worker: options.worker,
      order: options.sort ? 'sort' : 'auto',
    });
    const replayCpu = cpuSecondsSince(cpu);
    const mainCpu = cpuDelta(threads, threadCpuSeconds()).main ?? 0;
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
      floor: {
        seconds: floor.seconds,
        cpuSeconds: floor.cpuSeconds,
        recordsPerSecond: floor.records / floor.seconds,
        samples: floor.samples,
        ratio: floor.records / floor.seconds / (raw.records / raw.seconds),
      },
      replay: {
        seconds: summary.seconds,
        cpuSeconds: replayCpu,
        mainCpuSeconds: mainCpu,
        recordsPerSecond: summary.recordsPerSecond,
        recordsPerCpuSecond: records / replayCpu,
        phases: summary.phases,
        order: summary.order,
        readerThread: summary.readerThread,
        transfer: options.transfer,
        samples: summary.written.samples,
        unmatched: summary.written.unmatched,
      },
      ratio: summary.recordsPerSecond / (raw.records / raw.seconds),
      ratioCpu: records / replayCpu / (raw.records / raw.cpuSeconds),
      target: TARGET_RATIO,
      // Only the second round of each mode (the first warms up the worker's JIT).
      transfer: transfer.slice(2),
      loadAverageEnd: loadavg()[0] ?? 0,
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
      ['floor: + pair, encode, write samples', r.floor.seconds.toFixed(2), rate(r.floor.recordsPerSecond), r.floor.cpuSeconds.toFixed(2), rate(r.records / r.floor.cpuSeconds)],
      ['replay, end to end', r.replay.seconds.toFixed(2), rate(r.replay.recordsPerSecond), r.replay.cpuSeconds.toFixed(2), rate(r.replay.recordsPerCpuSecond)],
      ['  main thread only', '', '', r.replay.mainCpuSeconds.toFixed(2), rate(r.records / r.replay.mainCpuSeconds)],
      [`  main waits for records${r.replay.order.mode === 'sort' ? ' + sorts' : ''}`, r.replay.phases.read.toFixed(2), perPhase(r.replay.phases.read), '', ''],
      ['  join (samples topology)', r.replay.phases.join.toFixed(2), perPhase(r.replay.phases.join), '', ''],
      ['  write samples at the end', r.replay.phases.write.toFixed(2), perPhase(r.replay.phases.write), '', ''],
      ...r.transfer.map((t) => [`transfer only (${t.mode}), main thread`, t.seconds.toFixed(2), rate(r.records / t.seconds), t.mainCpuSeconds.toFixed(2), `${t.mainMicrosPerRecord.toFixed(2)} µs/rec`]),
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
      `${Math.max(r.ratio, r.ratioCpu) >= r.target ? 'met' : 'not met'}. Floor / raw (no join logic, one thread) = ${r.floor.ratio.toFixed(3)}. ` +
      `${r.replay.samples.toLocaleString('en-US')} samples, ${r.replay.unmatched.toLocaleString('en-US')} unmatched.`,
    '',
  ].join('\n');
  appendFileSync(path, text);
}

if (isMainModule(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      predictions: { type: 'string', default: '50000' },
      transfer: { type: 'string', default: 'packed' },
      'no-worker': { type: 'boolean', default: false },
      sort: { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
    },
  });
  if (values.transfer !== 'packed' && values.transfer !== 'clone') throw new Error(`--transfer must be packed or clone, got ${values.transfer}`);
  const predictions = Number(values.predictions);
  if (!Number.isSafeInteger(predictions) || predictions < 1) throw new Error(`--predictions must be a positive integer, got ${values.predictions}`);
  runReplayBench({ predictions, write: !values['no-write'], transfer: values.transfer, worker: !values['no-worker'], sort: values.sort }).then(
    (r) => {
      console.log(replayTable(r));
      console.log(`ratio floor / raw = ${r.floor.ratio.toFixed(3)} (no join logic, one thread)`);
      console.log(`ratio replay / raw = ${r.ratio.toFixed(3)} wall clock, ${r.ratioCpu.toFixed(3)} per CPU-second (target >= ${r.target}); order ${r.replay.order.mode}; load average ${r.loadAverage.toFixed(1)} → ${r.loadAverageEnd.toFixed(1)}`);
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
