/**
 * `rocksdb` (discontinued upstream; leveldown callback API) versus `@nxtedition/rocksdb` (maintained
 * fork; used synchronously by engine/state/rocks.ts) on the state-store workload: batch puts of ~600-byte
 * values keyed by request ID, point gets, bounded range scans. Every contender gets the engine's
 * 64 MiB block cache (and the fork its uncompressed WAL) except the "binding defaults" row.
 * Run: `npm run build && node --expose-gc dist/bench/rocksdb-choice.js [--ops N]`.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { StateError, UsageError } from '../engine/errors.js';
import { RocksDatabase } from '../engine/state/rocks.js';
import { collectGarbage, formatTable, isMainModule, machineInfo, rate, resultPath, writeResult, type MachineInfo } from './measure.js';
import { benchRequestId, mulberry32 } from './traffic.js';

export type Phase = 'put' | 'get' | 'scan' | 'getConcurrent';

/** One library driven the way it would be used on the hot path; each phase runs to completion. */
interface Store {
  putBatches(batches: ReadonlyArray<ReadonlyArray<readonly [Buffer, Buffer]>>): Promise<void>;
  /** Point gets one after the other (a stream task needs each answer before the next record). */
  getEach(keys: readonly Buffer[]): Promise<number>;
  /** Point gets with up to `inFlight` outstanding; null when the API is synchronous (no overlap possible). */
  getConcurrent: ((keys: readonly Buffer[], inFlight: number) => Promise<number>) | null;
  /** One bounded scan per start key; returns the rows read. */
  scanEach(starts: readonly Buffer[], limit: number): Promise<number>;
  close(): Promise<void>;
}

export interface Contender {
  name: string;
  api: string;
  open(dir: string): Promise<Store>;
}

const require = createRequire(import.meta.url);
const KEY_END = Buffer.from([0xff]);

// ---- rocksdb 5.x (leveldown / abstract-leveldown 7: callbacks only) ----

type Callback<T> = (err: Error | null | undefined, value?: T) => void;
interface LeveldownIterator {
  next(cb: (err: Error | null | undefined, key?: Buffer, value?: Buffer) => void): void;
  end(cb: (err?: Error | null) => void): void;
}
interface Leveldown {
  open(options: object, cb: (err?: Error | null) => void): void;
  close(cb: (err?: Error | null) => void): void;
  batch(ops: Array<{ type: 'put'; key: Buffer; value: Buffer }>, cb: (err?: Error | null) => void): void;
  get(key: Buffer, options: object, cb: Callback<Buffer>): void;
  iterator(options: object): LeveldownIterator;
}

function settle<T>(run: (cb: Callback<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => run((err, value) => (err ? reject(err) : resolve(value as T))));
}

const classic: Contender = {
  name: 'rocksdb 5.2.1',
  api: 'async (callbacks)',
  async open(dir) {
    const factory = require('rocksdb') as (location: string) => Leveldown;
    const db = factory(dir);
    await settle<void>((cb) => db.open({ createIfMissing: true, cacheSize: ENGINE_CACHE_BYTES }, cb));
    const getOne = (key: Buffer): Promise<Buffer> => settle<Buffer>((cb) => db.get(key, { asBuffer: true }, cb));
    return {
      async putBatches(batches) {
        for (const batch of batches) {
          await settle<void>((cb) => db.batch(batch.map(([key, value]) => ({ type: 'put' as const, key, value })), cb));
        }
      },
      async getEach(keys) {
        let bytes = 0;
        for (const key of keys) bytes += (await getOne(key)).length;
        return bytes;
      },
      getConcurrent: (keys, inFlight) => concurrently(keys, inFlight, getOne),
      async scanEach(starts, limit) {
        let rows = 0;
        for (const gte of starts) {
          const it = db.iterator({ gte, lt: KEY_END, limit, keyAsBuffer: true, valueAsBuffer: true });
          for (;;) {
            const key = await new Promise<Buffer | undefined>((resolve, reject) => it.next((err, k) => (err ? reject(err) : resolve(k))));
            if (key === undefined) break;
            rows++;
          }
          await settle<void>((cb) => it.end(cb));
        }
        return rows;
      },
      close: () => settle<void>((cb) => db.close(cb)),
    };
  },
};

// ---- @nxtedition/rocksdb 12.x ----

interface NxtBatch {
  _put(key: Buffer, value: Buffer, options: object): void;
  _writeSync(options: { sync: boolean }): void;
  _closeSync(): void;
}
interface NxtIterator {
  nextv(size: number): Promise<Array<[Buffer, Buffer]>>;
  close(): Promise<void>;
}
interface NxtDb {
  open(): Promise<void>;
  close(): Promise<void>;
  _chainedBatch(): NxtBatch;
  detachResource(resource: object): void;
  batch(ops: Array<{ type: 'put'; key: Buffer; value: Buffer }>): Promise<void>;
  get(key: Buffer): Promise<Buffer | undefined>;
  iterator(options: object): NxtIterator;
  _getManySync(keys: Buffer[], options: object): Array<Buffer | undefined>;
  querySync(options: object): { rows: Buffer[]; finished: boolean };
}
type NxtCtor = new (location: string, options: object) => NxtDb;
const BUFFERS = { keyEncoding: 'buffer', valueEncoding: 'buffer' } as const;
const NO_OPTIONS = {};
/** The engine's tuning in engine/state/rocks.ts, given to every contender that supports it (the classic package has no WAL compression). */
const ENGINE_CACHE_BYTES = 64 << 20;
const ENGINE_NXT_OPTIONS = { walCompression: false, cacheSize: ENGINE_CACHE_BYTES };

function openNxt(dir: string, extra: object = {}): Promise<NxtDb> {
  const { RocksLevel } = require('@nxtedition/rocksdb') as { RocksLevel: NxtCtor };
  const db = new RocksLevel(dir, { ...BUFFERS, createIfMissing: true, ...extra });
  return db.open().then(() => db);
}

const nxtAsync: Contender = {
  name: '@nxtedition/rocksdb 12.2.12',
  api: 'async (promises)',
  async open(dir) {
    const db = await openNxt(dir, ENGINE_NXT_OPTIONS);
    const getOne = async (key: Buffer): Promise<Buffer> => {
      const value = await db.get(key);
      if (value === undefined) throw new StateError(`benchmark key ${key.toString()} is missing`);
      return value;
    };
    return {
      async putBatches(batches) {
        for (const batch of batches) await db.batch(batch.map(([key, value]) => ({ type: 'put' as const, key, value })));
      },
      async getEach(keys) {
        let bytes = 0;
        for (const key of keys) bytes += (await getOne(key)).length;
        return bytes;
      },
      getConcurrent: (keys, inFlight) => concurrently(keys, inFlight, getOne),
      async scanEach(starts, limit) {
        let rows = 0;
        for (const gte of starts) {
          const it = db.iterator({ gte, lt: KEY_END, limit });
          rows += (await it.nextv(limit)).length;
          await it.close();
        }
        return rows;
      },
      close: () => db.close(),
    };
  },
};

/** The engine's facade (engine/state/rocks.ts): synchronous batch write, multi-get and bounded query. */
const nxtSync: Contender = {
  name: '@nxtedition/rocksdb 12.2.12',
  api: 'sync, via engine/state/rocks.ts',
  async open(dir) {
    const db = await RocksDatabase.open(dir);
    return {
      putBatches(batches) {
        for (const batch of batches) db.write(batch.map(([key, value]) => ({ type: 'put' as const, key, value })));
        return Promise.resolve();
      },
      getEach(keys) {
        let bytes = 0;
        for (const key of keys) {
          const value = db.get(key);
          if (value === undefined) throw new StateError(`benchmark key ${key.toString()} is missing`);
          bytes += value.length;
        }
        return Promise.resolve(bytes);
      },
      getConcurrent: null,
      scanEach(starts, limit) {
        let rows = 0;
        for (const gte of starts) rows += db.range(gte, KEY_END, limit).length;
        return Promise.resolve(rows);
      },
      close: () => db.close(),
    };
  },
};

/**
 * The engine's synchronous calls with the binding's default options (WAL compressed with ZSTD on the
 * writing thread, 8 MiB block cache) instead of engine/state/rocks.ts's tuning: separates API from tuning.
 */
const nxtSyncDefaults: Contender = {
  name: '@nxtedition/rocksdb 12.2.12',
  api: 'sync, binding defaults',
  async open(dir) {
    const db = await openNxt(dir);
    return {
      putBatches(batches) {
        for (const batch of batches) {
          const b = db._chainedBatch();
          try {
            for (const [key, value] of batch) b._put(key, value, NO_OPTIONS);
            b._writeSync({ sync: false });
          } finally {
            b._closeSync();
            db.detachResource(b);
          }
        }
        return Promise.resolve();
      },
      getEach(keys) {
        let bytes = 0;
        for (const key of keys) bytes += (db._getManySync([key], BUFFERS)[0] as Buffer).length;
        return Promise.resolve(bytes);
      },
      getConcurrent: null,
      scanEach(starts, limit) {
        let rows = 0;
        for (const gte of starts) rows += db.querySync({ ...BUFFERS, gte, lt: KEY_END, limit }).rows.length / 2;
        return Promise.resolve(rows);
      },
      close: () => db.close(),
    };
  },
};

export const CONTENDERS: readonly Contender[] = [classic, nxtAsync, nxtSync, nxtSyncDefaults];

async function concurrently(keys: readonly Buffer[], inFlight: number, getOne: (key: Buffer) => Promise<Buffer>): Promise<number> {
  let next = 0;
  let bytes = 0;
  const worker = async (): Promise<void> => {
    while (next < keys.length) {
      const value = await getOne(keys[next++] as Buffer);
      bytes += value.length; // after the await: `bytes += await ...` would read a stale total
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return bytes;
}

export interface Workload {
  ops: number;
  batchSize: number;
  valueBytes: number;
  scanLimit: number;
  concurrency: number;
  batches: Array<Array<readonly [Buffer, Buffer]>>;
  getKeys: Buffer[];
  scanStarts: Buffer[];
}

/**
 * Values shaped like an Avro map of doubles (short ASCII names + 8 random bytes), so they compress
 * about as well as real state; keys are UUID-shaped request IDs in random order.
 */
export function buildWorkload(ops: number, options: { batchSize?: number; valueBytes?: number; scanLimit?: number; concurrency?: number; seed?: number } = {}): Workload {
  const batchSize = options.batchSize ?? 500;
  const valueBytes = options.valueBytes ?? 600;
  const scanLimit = options.scanLimit ?? 10;
  const seed = options.seed ?? 7;
  const random = mulberry32(seed);
  const keys = Array.from({ length: ops }, (_, i) => Buffer.from(benchRequestId(seed, i), 'utf8'));
  const batches: Array<Array<readonly [Buffer, Buffer]>> = [];
  for (let i = 0; i < ops; i += batchSize) {
    batches.push(keys.slice(i, i + batchSize).map((key, j) => [key, shapedValue(valueBytes, random, i + j)] as const));
  }
  const pick = (): Buffer => keys[Math.floor(random() * keys.length)] as Buffer;
  // Scans start where at least `scanLimit` keys follow, so every scan reads exactly `scanLimit` rows.
  const sorted = [...keys].sort(Buffer.compare);
  const scannable = Math.max(1, sorted.length - scanLimit);
  return {
    ops,
    batchSize,
    valueBytes,
    scanLimit,
    concurrency: options.concurrency ?? 32,
    batches,
    getKeys: Array.from({ length: ops }, pick),
    scanStarts: Array.from({ length: Math.max(1, Math.floor(ops / scanLimit)) }, () => sorted[Math.floor(random() * scannable)] as Buffer),
  };
}

function shapedValue(size: number, random: () => number, n: number): Buffer {
  const value = Buffer.allocUnsafe(size);
  let at = 0;
  let field = 0;
  while (at < size) {
    const name = `feature_${String(field++ % 40).padStart(2, '0')}`;
    at += value.write(name, at, 'latin1');
    for (let b = 0; b < 8 && at < size; b++) value[at++] = Math.floor(random() * 256) ^ (n & 0xff);
  }
  return value;
}

export interface PhaseResult {
  phase: Phase;
  /** Puts, gets or scans. */
  ops: number;
  /** Rows written (puts) or read (gets, scans). */
  rows: number;
  seconds: number;
  /** Process CPU time (user + system, every thread incl. RocksDB's and libuv's) during the phase. */
  cpuSeconds: number;
  opsPerSecond: number;
  opsPerCpuSecond: number;
}

export interface PhaseSummary {
  phase: Phase;
  /** Median over rounds. */
  opsPerSecond: number;
  opsPerCpuSecond: number;
  /** ops/s of each round, in round order. */
  rounds: number[];
}

export interface ContenderResult {
  name: string;
  api: string;
  phases: PhaseSummary[];
}

export interface RocksChoiceResult {
  benchmark: 'rocksdb-choice';
  at: string;
  machine: MachineInfo;
  loadAverage: { start: number[]; end: number[] };
  workload: { ops: number; batchSize: number; valueBytes: number; scanLimit: number; scans: number; concurrency: number; rounds: number };
  contenders: ContenderResult[];
  /** The engine's usage (nxtedition, sync) over the classic package, per phase, from the medians. */
  ratios: Array<{ phase: Phase; engineOverClassic: number; engineOverClassicCpu: number }>;
}

async function timed<T>(run: () => Promise<T>): Promise<{ value: T; seconds: number; cpuSeconds: number }> {
  collectGarbage();
  const cpu = process.cpuUsage();
  const started = performance.now();
  const value = await run();
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { value, seconds, cpuSeconds: (used.user + used.system) / 1e6 };
}

/** Runs the four phases on a fresh database in a temp dir (removed afterwards). */
export async function measureContender(contender: Contender, w: Workload): Promise<PhaseResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'sampleloop-bench-rocks-'));
  const store = await contender.open(dir);
  const phases: PhaseResult[] = [];
  const record = (phase: Phase, ops: number, rows: number, t: { seconds: number; cpuSeconds: number }): void => {
    phases.push({ phase, ops, rows, seconds: t.seconds, cpuSeconds: t.cpuSeconds, opsPerSecond: ops / t.seconds, opsPerCpuSecond: ops / t.cpuSeconds });
  };
  const expectBytes = (what: string, got: number): void => {
    const want = w.getKeys.length * w.valueBytes;
    if (got !== want) throw new StateError(`${contender.name} [${contender.api}]: ${what} read ${got} bytes, expected ${want}`);
  };
  try {
    const put = await timed(() => store.putBatches(w.batches));
    record('put', w.ops, w.ops, put);
    const get = await timed(() => store.getEach(w.getKeys));
    expectBytes('gets', get.value);
    record('get', w.getKeys.length, w.getKeys.length, get);
    if (store.getConcurrent) {
      const concurrent = store.getConcurrent;
      const many = await timed(() => concurrent(w.getKeys, w.concurrency));
      expectBytes('concurrent gets', many.value);
      record('getConcurrent', w.getKeys.length, w.getKeys.length, many);
    }
    const scan = await timed(() => store.scanEach(w.scanStarts, w.scanLimit));
    if (scan.value !== w.scanStarts.length * w.scanLimit) {
      throw new StateError(`${contender.name} [${contender.api}]: scans read ${scan.value} rows, expected ${w.scanStarts.length * w.scanLimit}`);
    }
    record('scan', w.scanStarts.length, scan.value, scan);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return phases;
}

/**
 * Each contender runs in its own child process: the two packages each link their own RocksDB
 * (6.17 and 9.7), and loading both into one process crashes (SIGSEGV in a flush thread, seen here).
 */
function measureInChild(index: number, ops: number): Promise<PhaseResult[]> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), ['--child', String(index), '--ops', String(ops)], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result: PhaseResult[] | undefined;
    child.on('message', (message) => {
      result = message as PhaseResult[];
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      const c = CONTENDERS[index] as Contender;
      if (result !== undefined && code === 0) resolve(result);
      else reject(new StateError(`benchmark of ${c.name} [${c.api}] failed: child exited with ${signal ?? `code ${code}`}`));
    });
  });
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function summarize(runs: ReadonlyArray<readonly PhaseResult[]>): PhaseSummary[] {
  const phases = (runs[0] ?? []).map((p) => p.phase);
  return phases.map((phase) => {
    const of = runs.map((r) => r.find((p) => p.phase === phase) as PhaseResult);
    return { phase, opsPerSecond: median(of.map((p) => p.opsPerSecond)), opsPerCpuSecond: median(of.map((p) => p.opsPerCpuSecond)), rounds: of.map((p) => p.opsPerSecond) };
  });
}

export interface RocksChoiceOptions {
  ops: number;
  /** Every contender runs this many times (order rotated each round); medians are reported. */
  rounds: number;
  resultFile: string | null;
  out: (line: string) => void;
}

export const DEFAULT_ROCKS_OPTIONS: RocksChoiceOptions = { ops: 200_000, rounds: 3, resultFile: resultPath('rocksdb-choice'), out: (line) => console.log(line) };

export async function runRocksdbChoice(partial: Partial<RocksChoiceOptions> = {}): Promise<RocksChoiceResult> {
  const options = { ...DEFAULT_ROCKS_OPTIONS, ...partial };
  const say = options.out;
  const w = buildWorkload(options.ops);
  const loadStart = loadavg();
  say(
    `rocksdb choice: ${w.ops.toLocaleString('en-US')} puts (batches of ${w.batchSize}, ${w.valueBytes}-byte values), ${w.getKeys.length.toLocaleString('en-US')} gets, ` +
      `${w.scanStarts.length.toLocaleString('en-US')} scans of ${w.scanLimit}; ${options.rounds} rounds, one child process per run`,
  );
  const runs: PhaseResult[][][] = CONTENDERS.map(() => []);
  for (let round = 0; round < options.rounds; round++) {
    for (let k = 0; k < CONTENDERS.length; k++) {
      const index = (round + k) % CONTENDERS.length;
      const c = CONTENDERS[index] as Contender;
      const phases = await measureInChild(index, options.ops);
      (runs[index] as PhaseResult[][]).push(phases);
      say(`  round ${round + 1}: ${c.name} [${c.api}]: ${phases.map((p) => `${p.phase} ${rate(p.opsPerSecond)}/s`).join(', ')}`);
    }
  }
  const contenders = CONTENDERS.map((c, i) => ({ name: c.name, api: c.api, phases: summarize(runs[i] as PhaseResult[][]) }));
  const engine = contenders[CONTENDERS.indexOf(nxtSync)] as ContenderResult;
  const old = contenders[CONTENDERS.indexOf(classic)] as ContenderResult;
  const ratios = (['put', 'get', 'scan'] as const).map((phase) => {
    const a = engine.phases.find((p) => p.phase === phase) as PhaseSummary;
    const b = old.phases.find((p) => p.phase === phase) as PhaseSummary;
    return { phase, engineOverClassic: a.opsPerSecond / b.opsPerSecond, engineOverClassicCpu: a.opsPerCpuSecond / b.opsPerCpuSecond };
  });
  const result: RocksChoiceResult = {
    benchmark: 'rocksdb-choice',
    at: new Date().toISOString(),
    machine: machineInfo(),
    loadAverage: { start: loadStart, end: loadavg() },
    workload: { ops: w.ops, batchSize: w.batchSize, valueBytes: w.valueBytes, scanLimit: w.scanLimit, scans: w.scanStarts.length, concurrency: w.concurrency, rounds: options.rounds },
    contenders,
    ratios,
  };
  say('');
  say(rocksTable(result));
  if (options.resultFile !== null) {
    writeResult(options.resultFile, result);
    say(`\nresults written to ${options.resultFile}`);
  }
  return result;
}

export function rocksTable(result: RocksChoiceResult): string {
  const w = result.workload;
  const header = ['package', 'API', 'puts', 'gets', `gets (${w.concurrency} in flight)`, `scans (${w.scanLimit} rows)`];
  const phases: Phase[] = ['put', 'get', 'getConcurrent', 'scan'];
  const rows = (pick: (p: PhaseSummary) => number): string[][] =>
    result.contenders.map((c) => [c.name, c.api, ...phases.map((phase) => {
      const p = c.phases.find((x) => x.phase === phase);
      return p ? rate(pick(p)) : 'n/a';
    })]);
  const ratios = result.ratios
    .map((r) => `${r.phase} ${r.engineOverClassic.toFixed(2)}x (per CPU-second ${r.engineOverClassicCpu.toFixed(2)}x)`)
    .join(', ');
  return [
    `ops per second, wall clock (median of ${w.rounds}):`,
    formatTable(header, rows((p) => p.opsPerSecond)),
    '',
    'ops per CPU-second (process CPU incl. RocksDB and libuv threads; median):',
    formatTable(header, rows((p) => p.opsPerCpuSecond)),
    '',
    `engine's usage (@nxtedition/rocksdb, sync) over rocksdb 5.2.1: ${ratios}`,
  ].join('\n');
}

export function rocksOptionsFromArgs(args: readonly string[]): Partial<RocksChoiceOptions> {
  const { values } = parseArgs({ args: [...args], strict: false, options: { ops: { type: 'string' }, rounds: { type: 'string' }, 'rocks-out': { type: 'string' }, 'no-write': { type: 'boolean' } } });
  const int = (flag: 'ops' | 'rounds', min: number, fallback: number): number => {
    const text = values[flag];
    if (typeof text !== 'string') return fallback;
    const n = Number(text.replaceAll('_', ''));
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${flag} must be an integer >= ${min}, got "${text}"`);
    return n;
  };
  const out = typeof values['rocks-out'] === 'string' ? values['rocks-out'] : DEFAULT_ROCKS_OPTIONS.resultFile;
  return {
    ops: int('ops', 100, DEFAULT_ROCKS_OPTIONS.ops),
    rounds: int('rounds', 1, DEFAULT_ROCKS_OPTIONS.rounds),
    resultFile: values['no-write'] === true ? null : out,
  };
}

async function childMain(args: readonly string[]): Promise<void> {
  const index = Number(args[args.indexOf('--child') + 1]);
  const contender = CONTENDERS[index];
  if (contender === undefined) throw new UsageError(`--child needs a contender index 0..${CONTENDERS.length - 1}`);
  const phases = await measureContender(contender, buildWorkload(rocksOptionsFromArgs(args).ops ?? DEFAULT_ROCKS_OPTIONS.ops));
  await new Promise<void>((resolve, reject) => process.send?.(phases, (err: Error | null) => (err ? reject(err) : resolve())));
}

if (isMainModule(import.meta.url)) {
  const args = process.argv.slice(2);
  const main = args.includes('--child') ? childMain(args) : runRocksdbChoice(rocksOptionsFromArgs(args));
  main.catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
