/**
 * RocksDB open options (engine/state/rocks.ts ROCKS_TUNING) compared on a synthetic copy of the embedded
 * engine's storage workload, one child process per run so each gets its own RocksDB threads:
 * - an append-only log: keys = topic/partition prefix + big-endian offset, JSON values of 0.5–1.5 KB;
 * - a state store keyed by request ID: per prediction two point gets that miss, a put and an expiry-index
 *   put; per feedback a get that hits, then deletes; 10 % of predictions never get feedback and expire;
 * - a bounded range query on the time-ordered expiry index per record;
 * - everything of a commit (`--commit` records) in one atomic batch, WAL on, no fsync.
 * Reports main-thread and RocksDB-thread CPU (during the run, and after waiting for pending
 * flushes/compactions to finish) and the data directory size once RocksDB is idle.
 * Run: `npm run build && node dist/bench/rocksdb-options.js [--records 1000000] [--rounds 2] [--configs a,b]`.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { UsageError } from '../engine/errors.js';
import { ROCKS_TUNING, RocksDatabase, type WriteOp } from '../engine/state/rocks.js';
import { cpuDelta, formatTable, isMainModule, mib, rate, threadCpuSeconds } from './measure.js';
import { benchRequestId, mulberry32 } from './traffic.js';

/** Candidate option sets, each applied over the binding's defaults plus the engine's cache and WAL settings. */
export const CONFIGS: Record<string, Record<string, unknown>> = {
  // The binding with no tuning: ZSTD with a trained 16 KiB dictionary on every level and on flushes; bloom filters.
  default: {},
  none: { compression: false }, // no compression anywhere (the prebuilt binding links ZSTD only: no Snappy/LZ4)
  // Leveled preset: L0 and the base level uncompressed, ZSTD (no dictionary) below; 2 x 32 MiB memtables merged per flush.
  level: { compaction: 'level', compression: false, memtableMemoryBudget: 128 << 20 },
  'level+point-lookup': { compaction: 'level', compression: false, memtableMemoryBudget: 128 << 20, optimize: 'point-lookup' },
  // Universal preset: flushes uncompressed, compactions ZSTD+dictionary for the oldest 80 % of the data.
  universal: { compaction: 'universal' },
  'universal-128': { compaction: 'universal', memtableMemoryBudget: 128 << 20 },
  engine: ROCKS_TUNING,
};

interface RunResult {
  config: string;
  records: number;
  seconds: number;
  mainCpuSeconds: number;
  rocksdbCpuSeconds: number;
  /** RocksDB-thread CPU including the flushes/compactions still pending when the workload ended. */
  rocksdbSettledCpuSeconds: number;
  dataDirBytes: number;
  getMicros: number;
}

const LOG_PREFIX = Buffer.from('l\x00bench.predictions\x00\x00\x00\x00\x00', 'latin1');
const OUT_PREFIX = Buffer.from('l\x00bench.samples\x00\x00\x00\x00\x00', 'latin1');
const STATE_PREFIX = Buffer.from('s\x00join.predictions\x00', 'latin1');
const INDEX_PREFIX = Buffer.from('s\x00join.expiry\x00', 'latin1');

function offsetKey(prefix: Buffer, offset: number): Buffer {
  const key = Buffer.allocUnsafe(prefix.length + 8);
  prefix.copy(key);
  key.writeBigUInt64BE(BigInt(offset), prefix.length);
  return key;
}

function indexKey(time: number, id: string): Buffer {
  const key = Buffer.allocUnsafe(INDEX_PREFIX.length + 8 + id.length);
  INDEX_PREFIX.copy(key);
  key.writeBigUInt64BE(BigInt(time), INDEX_PREFIX.length);
  key.write(id, INDEX_PREFIX.length + 8, 'latin1');
  return key;
}

/** A JSON value shaped like a sample: request ID, model, timestamps and 10–40 numeric features. */
function jsonValue(random: () => number, id: string, time: number): Buffer {
  const features: Record<string, number> = {};
  const n = 10 + Math.floor(random() * 31);
  for (let i = 0; i < n; i++) features[`feature_${i}`] = Math.round(random() * 1e6) / 1e6;
  return Buffer.from(JSON.stringify({ requestId: id, model: 'fraud-v3', category: 'fraud', timestamp: time, label: random() < 0.1 ? 'fraud' : 'legit', features }));
}

function directoryBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) total += statSync(join(dir, name)).size;
  return total;
}

async function settle(db: RocksDatabase): Promise<void> {
  for (;;) {
    const busy = ['rocksdb.num-running-flushes', 'rocksdb.num-running-compactions', 'rocksdb.mem-table-flush-pending', 'rocksdb.compaction-pending'].some(
      (p) => Number(db.property(p)) > 0,
    );
    if (!busy) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function runWorkload(config: string, records: number, commit: number): Promise<RunResult> {
  const tuning = CONFIGS[config];
  if (tuning === undefined) throw new UsageError(`unknown config ${config}`);
  const dir = mkdtempSync(join(tmpdir(), 'sampleloop-bench-rocks-options-'));
  const db = await RocksDatabase.open(dir, { tuning });
  try {
    const random = mulberry32(42);
    const feedbackDelay = 2_000; // records between a prediction and its feedback
    const expireAfter = 5_000;
    let logOffset = 0;
    let closedUpTo = 0;
    let outOffset = 0;
    let getNanos = 0n;
    let gets = 0;
    const before = threadCpuSeconds();
    const started = performance.now();
    let ops: WriteOp[] = [];
    for (let i = 0; i < records; i++) {
      const time = i; // one record per millisecond of event time
      const isPrediction = i % 2 === 0;
      const request = isPrediction ? i / 2 : (i - 1 - feedbackDelay) / 2;
      const id = benchRequestId(7, request);
      const value = jsonValue(random, id, time);
      ops.push({ type: 'put', key: offsetKey(LOG_PREFIX, logOffset++), value });
      const stateKey = Buffer.concat([STATE_PREFIX, Buffer.from(id, 'latin1')]);
      const t0 = process.hrtime.bigint();
      if (isPrediction) {
        db.getMany([stateKey, Buffer.concat([stateKey, Buffer.from('/fb')])]); // both miss: a new request ID
        gets += 2;
        getNanos += process.hrtime.bigint() - t0;
        ops.push({ type: 'put', key: stateKey, value: value.subarray(0, 700) });
        ops.push({ type: 'put', key: indexKey(time + expireAfter, id), value: Buffer.from(id, 'latin1') });
      } else if (request >= 0 && request % 10 !== 0) {
        const held = db.get(stateKey);
        gets += 1;
        getNanos += process.hrtime.bigint() - t0;
        if (held !== undefined) {
          ops.push({ type: 'put', key: offsetKey(OUT_PREFIX, outOffset++), value: Buffer.concat([held, value.subarray(0, 300)]) });
          ops.push({ type: 'del', key: stateKey });
          ops.push({ type: 'del', key: indexKey(request * 2 + expireAfter, id) });
        }
      }
      // close expired entries: a bounded range query on the expiry index
      // (from the last close time, as the engine does: deleted entries below it are never rescanned)
      for (const [key, heldId] of db.range(indexKey(closedUpTo, ''), indexKey(time, ''), 8)) {
        ops.push({ type: 'del', key });
        ops.push({ type: 'del', key: Buffer.concat([STATE_PREFIX, heldId]) });
      }
      closedUpTo = Math.max(0, time - 1);
      if ((i + 1) % commit === 0 || i === records - 1) {
        db.write(ops);
        ops = [];
      }
    }
    const seconds = (performance.now() - started) / 1000;
    const during = cpuDelta(before, threadCpuSeconds());
    await settle(db);
    const settled = cpuDelta(before, threadCpuSeconds());
    return {
      config,
      records,
      seconds,
      mainCpuSeconds: during.main ?? 0,
      rocksdbCpuSeconds: during.rocksdb ?? 0,
      rocksdbSettledCpuSeconds: settled.rocksdb ?? 0,
      dataDirBytes: directoryBytes(dir),
      getMicros: Number(getNanos) / 1000 / Math.max(1, gets),
    };
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function runInChild(config: string, records: number, commit: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), ['--child', config, '--records', String(records), '--commit', String(commit)]);
    let result: RunResult | undefined;
    child.on('message', (m) => (result = m as RunResult));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 && result ? resolve(result) : reject(new Error(`child for ${config} exited with ${code}`))));
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: 'string' },
      records: { type: 'string', default: '1000000' },
      commit: { type: 'string', default: '500' },
      rounds: { type: 'string', default: '2' },
      configs: { type: 'string' },
    },
  });
  const records = Number(values.records);
  const commit = Number(values.commit);
  if (values.child !== undefined) {
    process.send?.(await runWorkload(values.child, records, commit));
    return;
  }
  const names = values.configs === undefined ? Object.keys(CONFIGS) : values.configs.split(',');
  const runs: RunResult[] = [];
  console.log(`rocksdb options: ${records.toLocaleString('en-US')} records, commits of ${commit}; load average ${loadavg()[0]?.toFixed(1)}`);
  for (let round = 0; round < Number(values.rounds); round++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(round + k) % names.length] as string;
      const r = await runInChild(name, records, commit);
      runs.push(r);
      console.log(
        `  round ${round + 1}: ${name}: ${rate(r.records / r.seconds)} rec/s, main ${r.mainCpuSeconds.toFixed(1)} s, rocksdb ${r.rocksdbCpuSeconds.toFixed(1)} s ` +
          `(settled ${r.rocksdbSettledCpuSeconds.toFixed(1)} s), get ${r.getMicros.toFixed(2)} µs, data ${mib(r.dataDirBytes)}, load ${loadavg()[0]?.toFixed(1)}`,
      );
    }
  }
  const rows = names.map((name) => {
    const mine = runs.filter((r) => r.config === name);
    const avg = (f: (r: RunResult) => number): number => mine.reduce((s, r) => s + f(r), 0) / mine.length;
    return [
      name,
      rate(avg((r) => r.records / r.seconds)),
      avg((r) => r.mainCpuSeconds).toFixed(1),
      avg((r) => r.rocksdbCpuSeconds).toFixed(1),
      avg((r) => r.rocksdbSettledCpuSeconds).toFixed(1),
      avg((r) => r.getMicros).toFixed(2),
      mib(avg((r) => r.dataDirBytes)),
    ];
  });
  console.log(`\nmean of ${values.rounds} rounds; load average at end ${loadavg()[0]?.toFixed(1)}`);
  console.log(formatTable(['config', 'records/s', 'main CPU s', 'rocksdb CPU s', 'rocksdb CPU s (settled)', 'get µs', 'data dir (idle)'], rows));
}

if (isMainModule(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
