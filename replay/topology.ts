/**
 * Replay: rebuilds samples from archived gateway (prediction) and business (feedback) logs with the
 * SAME samples topology the online engine runs (decode → privacy → join → labeling), fed directly:
 *
 * 1. a worker thread reads, validates and orders the archive: a k-way merge of the files by event time
 *    through a bounded reorder buffer per file (`merge`), or, for archives that are not (nearly) in
 *    event-time order, file by file into an on-disk sort (`sort`);
 * 2. the main thread hands the records in event-time order to the topology's tasks
 *    (replay/driver.ts); the join keeps its state in memory up to a budget
 *    (`replay.stateMemoryEntries`, half the heap), beyond it in RocksDB on disk;
 * 3. side outputs go straight to the target (file targets) or are held on disk until the end; samples
 *    are kept as the latest per request ID on disk and written at the end.
 *
 * A merge that meets a record older than the reorder buffer allows starts over with the on-disk
 * sort, so the outputs are always those of processing in exact event-time order.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SampleloopConfig } from '../config/config.js';
import { ClosedError, UsageError, ValidationError } from '../engine/errors.js';
import { silentLogger, type Logger } from '../engine/logger.js';
import { EngineMetrics } from '../engine/metrics.js';
import type { TransferMode } from './input/batch.js';
import { ReplayTopologyDriver } from './driver.js';
import { checkCsvDelimiter } from './input/csv.js';
import { checkOutputsAreNotInputs, describeFile, expandInputs } from './input/files.js';
import { JsonLinesFile } from './output/files-out.js';
import { emptyMapping, type ColumnMapping } from './input/mapping.js';
import { DisorderError } from './input/merge.js';
import { ReplayOutputs } from './output/outputs.js';
import { replayKeyMismatch, replayPrivacyPolicy, replayPrivacySettings } from './privacy.js';
import { ReplayProgress, type ProgressStream } from './progress.js';
import type { ReadSpec, ReadStats } from './input/records.js';
import { openSink, parseOutputTarget, sideFileBase, sideFileName } from './output/sinks.js';
import { outputTopics, SIDE_OUTPUTS, type OutputTarget, type ReplayOutput, type ReplaySink } from './output/sink.js';
import { openArchiveSource, StrictStopError } from './input/source.js';
import { ReplayStaging } from './staging.js';
import { sortedRecords, stageRecord } from './sorted.js';
import { samplesOutputs } from '../topologies/samples.js';
import { registerOutputSchemas } from '../topologies/serde.js';

export interface ReplayRequest {
  config: SampleloopConfig;
  /** Paths or globs of gateway logs (predictions). */
  gateway: readonly string[];
  /** Paths or globs of business-system logs (feedback). */
  business: readonly string[];
  /** `embedded[:<data-dir>]`, `file:<path>.jsonl`, `file:<path>.avro` or `kafka`. */
  out: string;
  mapping?: ColumnMapping;
  /** Rejects file; default next to the output. */
  rejects?: string;
  strict?: boolean;
  /** Event-time bounds (epoch ms): predictions in [since, until); feedback widened by the join window. */
  since?: number;
  until?: number;
  delimiter?: string;
  progress?: { enabled: boolean; stream: ProgressStream };
  logger?: Logger;
  /** Where the scratch database goes (default `replay.tempDir`, else the OS temp dir). */
  tempDir?: string;
  /** Aborting stops the replay at the next record batch: nothing is written to the target, the temporary directory is removed. */
  signal?: AbortSignal;
  /** `auto` (default): merge the files by event time, falling back to the on-disk sort when they are out of order; `sort`: sort on disk from the start. */
  order?: 'auto' | 'sort';
  /** Records per file the merge may reorder (default REORDER_WINDOW). */
  reorderWindow?: number;
  /** Read and validate in a worker thread (default true). */
  worker?: boolean;
  /** How records cross from the worker thread (default `packed`). */
  transfer?: TransferMode;
}

export interface ReplaySummary {
  target: string;
  outputs: Record<ReplayOutput, string>;
  rejectsFile: string;
  files: { gateway: number; business: number };
  bytes: number;
  records: { gateway: number; business: number };
  staged: { predictions: number; feedback: number };
  rejected: number;
  rejectedByReason: Record<string, number>;
  outOfRange: number;
  /** Records written per output; `samples` counts the latest sample per request ID. */
  written: Record<ReplayOutput, number>;
  /** Samples emitted by the join, every revision included. */
  samplesEmitted: number;
  /**
   * What the topology did with the staged records, by event (`sampleloop_processor_events_total` online,
   * summed over processors): `matched`, `revised`, `duplicate-feedback`, `feedback-buffered`, `rejected-<reasonCode>`, ...
   * Feedback that is only counted (`duplicate-feedback`, `superseded-feedback`) shows here and nowhere else.
   */
  events: Record<string, number>;
  /** How the records were put in event-time order: merged on the fly, or sorted on disk (and why). */
  order: { mode: 'merge' | 'sort'; reason: string };
  /** Whether the archive was read in a worker thread. */
  readerThread: boolean;
  seconds: number;
  /**
   * Wall-clock seconds of the main thread: `read` waiting for records (plus staging them in sort
   * mode), `join` running the topology, `write` writing samples (and held-back outputs) at the end.
   */
  phases: { read: number; join: number; write: number };
  /** Archive records (lines) read per second, over the whole run. */
  recordsPerSecond: number;
}

const TIME_MIN = 0;
const TIME_MAX = Number.MAX_SAFE_INTEGER;
/** Default reorder buffer: records per file the merge holds to put a nearly ordered file in order. */
export const REORDER_WINDOW = 2_000;
/** More files than this are sorted on disk: the merge holds a reorder buffer and a read chunk per file. */
export const MERGE_MAX_FILES = 64;
const BATCH = 1_000;

interface Attempt {
  mode: 'merge' | 'sort';
  reason: string;
}

interface AttemptResult {
  stats: ReadStats;
  written: Record<ReplayOutput, number>;
  samplesEmitted: number;
  events: Record<string, number>;
  phases: ReplaySummary['phases'];
  sink: ReplaySink;
  rejects: JsonLinesFile;
}

/** The files a replay writes that are known before it starts: a file target's samples and side files, and --rejects. */
function outputFilesOf(target: OutputTarget, rejects: string | undefined): string[] {
  const files = rejects === undefined ? [] : [rejects];
  if (target.kind === 'file') {
    const base = sideFileBase(target.path);
    files.push(target.path, sideFileName(base, 'rejects'), ...SIDE_OUTPUTS.map((side) => sideFileName(base, side)));
  }
  return files;
}

export async function runReplay(request: ReplayRequest): Promise<ReplaySummary> {
  const startedAt = performance.now();
  const { config } = request;
  const target = parseOutputTarget(request.out, config.dataDir);
  const gateway = expandInputs(request.gateway).map(describeFile);
  const business = expandInputs(request.business).map(describeFile);
  if (gateway.length + business.length === 0) throw new UsageError('nothing to replay: give gateway logs with --gateway and/or business logs with --business');
  checkOutputsAreNotInputs([...gateway, ...business].map((f) => f.path), outputFilesOf(target, request.rejects));
  checkCsvDelimiter(request.delimiter ?? ',');
  const since = request.since ?? TIME_MIN;
  const until = request.until ?? TIME_MAX;
  if (since >= until) throw new UsageError(`--since (${since}) must be before --until (${until})`);

  // The target's own key first (its online samples use it), then the engine's data dir given with --data-dir.
  const keyDirs = target.kind === 'embedded' ? [target.dataDir, config.dataDir] : [config.dataDir];
  const keyMismatch = replayKeyMismatch(config, keyDirs);
  if (keyMismatch !== undefined) (request.logger ?? silentLogger()).warn({ keyDirs }, keyMismatch);
  const privacySettings = replayPrivacySettings(config, keyDirs, target.kind === 'embedded' ? target.dataDir : undefined);
  const replayConfig: SampleloopConfig = { ...config, privacy: privacySettings };
  const privacy = replayPrivacyPolicy(replayConfig, keyDirs);
  const spec: ReadSpec = {
    files: [...gateway.map((f) => ({ ...f, side: 'gateway' as const })), ...business.map((f) => ({ ...f, side: 'business' as const }))],
    mapping: request.mapping ?? emptyMapping(),
    delimiter: request.delimiter ?? ',',
    maxRecordBytes: config.input.maxRecordBytes,
    ranges: {
      predictions: { from: since, to: until },
      feedback: { from: Math.max(TIME_MIN, since - config.join.beforeMs), to: Math.min(TIME_MAX, until + config.join.afterMs) },
    },
    strict: request.strict ?? false,
  };
  const totalBytes = spec.files.reduce((s, f) => s + f.bytes, 0);
  const tempRoot = mkdtempSync(join(request.tempDir ?? config.replay.tempDir ?? tmpdir(), 'sampleloop-replay-'));
  const logger = request.logger ?? silentLogger();
  const progress = new ReplayProgress({ enabled: request.progress?.enabled ?? false, stream: request.progress?.stream ?? process.stderr, intervalMs: config.replay.progressIntervalMs });
  const checkAborted = (): void => {
    if (request.signal?.aborted) throw new ClosedError('replay interrupted: nothing was written to the target');
  };
  const worker = request.worker ?? true;

  let attempt: Attempt =
    request.order === 'sort'
      ? { mode: 'sort', reason: 'requested (--sort)' }
      : spec.files.length > MERGE_MAX_FILES
        ? { mode: 'sort', reason: `${spec.files.length} files (the merge takes at most ${MERGE_MAX_FILES})` }
        : { mode: 'merge', reason: `each file in event-time order within the reorder buffer (${request.reorderWindow ?? REORDER_WINDOW} records)` };
  try {
    for (let n = 1; ; n++) {
      const context = { request, replayConfig, privacy, spec, totalBytes, progress, checkAborted, logger, worker, dir: join(tempRoot, `attempt-${n}`) };
      let result: AttemptResult;
      try {
        result = await runAttempt(attempt, target, context);
      } catch (err) {
        if (!(err instanceof DisorderError)) throw err;
        const file = spec.files[err.file];
        const reason = `${file?.path ?? `file #${err.file}`}:${err.line} is older than records after it by more than the reorder buffer (${request.reorderWindow ?? REORDER_WINDOW} records)`;
        logger.info({ reason }, 'replay: the archive is not in event-time order; starting over with the on-disk sort');
        attempt = { mode: 'sort', reason };
        continue;
      }
      const seconds = (performance.now() - startedAt) / 1000;
      const { stats } = result;
      return {
        target: request.out,
        outputs: result.sink.locations,
        rejectsFile: result.rejects.path,
        files: { gateway: gateway.length, business: business.length },
        bytes: totalBytes,
        records: stats.records,
        staged: stats.staged,
        rejected: stats.rejected,
        rejectedByReason: stats.rejectedByReason,
        outOfRange: stats.outOfRange,
        written: result.written,
        samplesEmitted: result.samplesEmitted,
        events: result.events,
        order: attempt,
        readerThread: worker,
        seconds,
        phases: result.phases,
        recordsPerSecond: (stats.records.gateway + stats.records.business) / Math.max(seconds, 1e-6),
      };
    }
  } finally {
    progress.stop();
    rmSync(tempRoot, { recursive: true, force: true });
  }
}

let lastTurn = 0;

/**
 * Lets the event loop run (signals, progress output) every few milliseconds: batches from the worker
 * can be ready all the time, and awaiting them alone never leaves the microtask queue.
 */
async function turnEventLoop(): Promise<void> {
  const now = performance.now();
  if (now - lastTurn < 20) return;
  lastTurn = now;
  await new Promise<void>((resolve) => setImmediate(resolve));
}

interface AttemptContext {
  request: ReplayRequest;
  replayConfig: SampleloopConfig;
  privacy: ReturnType<typeof replayPrivacyPolicy>;
  spec: ReadSpec;
  totalBytes: number;
  progress: ReplayProgress;
  checkAborted: () => void;
  logger: Logger;
  worker: boolean;
  dir: string;
}

/** One pass over the archive in `attempt.mode`; a merge that meets disorder throws DisorderError with nothing committed. */
async function runAttempt(attempt: Attempt, target: ReturnType<typeof parseOutputTarget>, c: AttemptContext): Promise<AttemptResult> {
  const { replayConfig: config, progress, checkAborted } = c;
  const sort = attempt.mode === 'sort';
  let sink: ReplaySink | undefined;
  let rejects: JsonLinesFile | undefined;
  let staging: ReplayStaging | undefined;
  let driver: ReplayTopologyDriver | undefined;
  const source = openArchiveSource(c.spec, sort ? { kind: 'files' } : { kind: 'merge', window: c.request.reorderWindow ?? REORDER_WINDOW }, {
    worker: c.worker,
    transfer: c.request.transfer ?? 'packed',
    batchSize: BATCH,
  });
  let committed = false;
  try {
    sink = await openSink(target, config);
    rejects = new JsonLinesFile(c.request.rejects ?? sink.defaultRejectsPath);
    staging = await ReplayStaging.open(c.dir);
    const topics = outputTopics(config.topics);
    const serdes = await registerOutputSchemas(sink.registry, samplesOutputs(config.topics));
    const outputs = new ReplayOutputs(sink, staging, topics);
    const metrics = new EngineMetrics();
    driver = new ReplayTopologyDriver({ config, privacy: c.privacy, serdes, db: staging.database, logger: c.logger, metrics, onOutputs: (o) => outputs.add(o) });
    const phases = { read: 0, join: 0, write: 0 };
    checkAborted();

    progress.start(sort ? '1/3 reading + sorting' : '1/2 reading + joining', 'bytes', c.totalBytes);
    const batches = source.batches();
    let lines = 0;
    for (;;) {
      const waitStart = performance.now();
      const next = await batches.next();
      phases.read += (performance.now() - waitStart) / 1000;
      if (next.done) break;
      const batch = next.value;
      checkAborted();
      for (const r of batch.rejects) await rejects.write(r);
      const joinStart = performance.now();
      if (sort) {
        for (const record of batch.records) stageRecord(staging, record);
        phases.read += (performance.now() - joinStart) / 1000;
      } else {
        await driver.processAll(batch.records);
        phases.join += (performance.now() - joinStart) / 1000;
      }
      if (batch.lines > 0) lines = batch.lines;
      progress.update(Math.max(batch.bytes, 0), lines);
      await turnEventLoop();
    }
    const stats = source.stats;
    progress.update(c.totalBytes, stats.records.gateway + stats.records.business);
    progress.end();

    if (sort) {
      const total = stats.staged.predictions + stats.staged.feedback;
      progress.start('2/3 joining', 'records', total);
      const joinStart = performance.now();
      for (const page of sortedRecords(staging)) {
        checkAborted();
        await driver.processAll(page);
        progress.update(driver.processed, driver.processed);
        await turnEventLoop();
      }
      phases.join += (performance.now() - joinStart) / 1000;
    }
    const finishStart = performance.now();
    await driver.finish();
    phases.join += (performance.now() - finishStart) / 1000;
    progress.end();

    const writeStart = performance.now();
    progress.start(sort ? '3/3 writing' : '2/2 writing', 'records', outputs.pending);
    await outputs.finish((done) => progress.update(done, done), checkAborted);
    progress.end();
    await sink.commit();
    await rejects.commit();
    committed = true;
    phases.write = (performance.now() - writeStart) / 1000;
    const events: Record<string, number> = {};
    for (const { labels, value } of (await metrics.events.get()).values) {
      const event = String(labels.event);
      if (value > 0) events[event] = (events[event] ?? 0) + value;
    }
    return { stats, written: outputs.written, samplesEmitted: outputs.samplesEmitted, events, phases, sink, rejects };
  } catch (err) {
    if (!committed) await sink?.abort();
    if (err instanceof DisorderError) rejects?.abort();
    // The rejects of a failed run (e.g. --strict) are the explanation: keep them.
    else await rejects?.commit().catch(() => undefined);
    if (err instanceof StrictStopError) throw new ValidationError(err.reasonCode, err.message);
    throw err;
  } finally {
    await source.close();
    driver?.close();
    await staging?.close();
    rmSync(c.dir, { recursive: true, force: true });
  }
}
