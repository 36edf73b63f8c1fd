/** Small measurement helpers shared by the benchmarks: memory peaks, percentiles, machine facts, tables, result files. */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../config/paths.js';

export interface MemoryPeak {
  /** Resident set size at the start of the phase (inputs already generated). */
  baselineRssBytes: number;
  peakRssBytes: number;
  baselineHeapUsedBytes: number;
  peakHeapUsedBytes: number;
  /** Peak of ArrayBuffers/Buffers allocated outside the V8 heap but tracked by it. */
  peakExternalBytes: number;
}

/** Samples `process.memoryUsage()` on demand and keeps the maxima (call it between measured intervals). */
export class MemoryTracker {
  private readonly peak: MemoryPeak;

  constructor() {
    const m = process.memoryUsage();
    this.peak = {
      baselineRssBytes: m.rss,
      peakRssBytes: m.rss,
      baselineHeapUsedBytes: m.heapUsed,
      peakHeapUsedBytes: m.heapUsed,
      peakExternalBytes: m.external,
    };
  }

  /** Returns the current RSS. */
  sample(): number {
    const m = process.memoryUsage();
    if (m.rss > this.peak.peakRssBytes) this.peak.peakRssBytes = m.rss;
    if (m.heapUsed > this.peak.peakHeapUsedBytes) this.peak.peakHeapUsedBytes = m.heapUsed;
    if (m.external > this.peak.peakExternalBytes) this.peak.peakExternalBytes = m.external;
    return m.rss;
  }

  result(): MemoryPeak {
    this.sample();
    return { ...this.peak };
  }
}

/** Runs a full GC when node was started with --expose-gc; returns whether it could. */
export function collectGarbage(): boolean {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== 'function') return false;
  gc();
  return true;
}

/**
 * Percentile of a weighted sample (nearest rank): `values[i]` occurs `weights[i]` times.
 * Used for per-record latencies when every record of a chunk shares the chunk's latency.
 */
export function weightedPercentile(values: readonly number[], weights: readonly number[], p: number): number {
  if (values.length !== weights.length) throw new RangeError('values and weights differ in length');
  if (values.length === 0) return Number.NaN;
  const order = values.map((_, i) => i).sort((a, b) => (values[a] as number) - (values[b] as number));
  let total = 0;
  for (const w of weights) total += w;
  const rank = Math.max(1, Math.ceil((p / 100) * total));
  let seen = 0;
  for (const i of order) {
    seen += weights[i] as number;
    if (seen >= rank) return values[i] as number;
  }
  return values[order[order.length - 1] as number] as number;
}

/** Linux clock ticks per second (USER_HZ), fixed at 100 on every mainstream architecture. */
const CLOCK_TICKS = 100;

/**
 * CPU seconds (user + system) used so far by this process's threads, grouped: `main` (all JavaScript),
 * `rocksdb` (RocksDB's flush and compaction threads) and `other` (Node's helper threads, all named
 * "node": V8's concurrent GC and JIT compilers, the libuv pool). Empty where /proc is not available.
 */
export function threadCpuSeconds(): Record<string, number> {
  const out: Record<string, number> = {};
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return out;
  }
  for (const tid of tids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' ');
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    const seconds = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
    const group = Number(tid) === process.pid ? 'main' : comm.startsWith('rocksdb') ? 'rocksdb' : 'other';
    out[group] = (out[group] ?? 0) + seconds;
  }
  return out;
}

/** `after - before`, per group. */
export function cpuDelta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [group, seconds] of Object.entries(after)) out[group] = seconds - (before[group] ?? 0);
  return out;
}

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  memoryBytes: number;
  node: string;
  v8: string;
  platform: string;
}

export function machineInfo(): MachineInfo {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    if (line) cpuModel = line.split(':').slice(1).join(':').trim();
  } catch {
    // not Linux: keep os.cpus()
  }
  return {
    nproc: cpus().length,
    cpuModel,
    memoryBytes: totalmem(),
    node: process.version,
    v8: process.versions.v8,
    platform: `${process.platform}-${process.arch}`,
  };
}

export function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(0)} MiB`;
}

export function rate(perSecond: number): string {
  return Math.round(perSecond).toLocaleString('en-US');
}

/** A plain-text table with right-aligned columns after the first. */
export function formatTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c] as number) : cell.padStart(widths[c] as number))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** `bench/results/<name>.json` in the package, whether running from the sources or from dist/. */
export function resultPath(name: string): string {
  return join(packageRoot(), 'bench', 'results', `${name}.json`);
}

export function writeResult(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** True when `moduleUrl` is the script node was started with (so a module can be both a CLI and a library). */
export function isMainModule(moduleUrl: string): boolean {
  const entry = process.argv[1];
  return entry !== undefined && fileURLToPath(moduleUrl) === entry;
}

export function elapsedMs(startedAt: number): number {
  return performance.now() - startedAt;
}
