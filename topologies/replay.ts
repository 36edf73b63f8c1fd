/**
 * Replay: rebuilds samples from archived gateway (prediction) and business (feedback) logs with the
 * SAME samples topology the online engine runs (decode → privacy → join → labeling), driven by a
 * bounded source:
 *
 * 1. every archive line is validated and staged on disk, sorted by event time;
 * 2. the sorted records become the `predictions` / `feedback` topics of a temporary embedded log;
 * 3. `startEmbeddedApp(origin = 'replay')` processes them (idle advance off), then `endOfInput()`
 *    closes every window still open;
 * 4. the outputs are copied to the target: samples compacted to the latest per request ID.
 *
 * Neither the archive nor the join state is held in the heap: both live in RocksDB on disk.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { join } from 'node:path';
import type { SampleloopConfig } from '../engine/config.js';
import { openEmbeddedLog, startEmbeddedApp, type EmbeddedApp } from '../engine/embedded/app.js';
import { decodeEntry, encodeEntry } from '../engine/embedded/log-codec.js';
import type { EmbeddedLog } from '../engine/embedded/log.js';
import { ClosedError, UsageError } from '../engine/errors.js';
import { silentLogger, type Logger } from '../engine/logger.js';
import { EngineMetrics } from '../engine/metrics.js';
import type { SourceRecord } from '../engine/record.js';
import { describeFile, expandInputs } from '../processors/replay-files.js';
import { JsonLinesFile } from '../processors/replay-files-out.js';
import { FEEDBACK_STREAM, PREDICTIONS_STREAM, stageArchive, type RejectedLine } from '../processors/replay-input.js';
import { emptyMapping, type ColumnMapping } from '../processors/replay-mapping.js';
import { replayPrivacyPolicy, replayPrivacySettings } from '../processors/replay-privacy.js';
import { ReplayProgress, type ProgressStream } from '../processors/replay-progress.js';
import { openSink, parseOutputTarget, SIDE_OUTPUTS, type ReplayOutput, type ReplaySink } from '../processors/replay-sinks.js';
import { ReplayStaging, STAGING_PAGE } from '../processors/replay-staging.js';

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
  /** Where the temporary log and staging go (default `replay.tempDir`, else the OS temp dir). */
  tempDir?: string;
  /** Aborting stops the replay at the next record batch: nothing is written to the target, the temporary directory is removed. */
  signal?: AbortSignal;
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
  seconds: number;
  /** Wall-clock seconds of each phase: reading + staging the archive, the join, writing the outputs. */
  phases: { read: number; join: number; write: number };
  /** Archive records (lines) read per second, over the whole run. */
  recordsPerSecond: number;
}

const TIME_MIN = 0;
const TIME_MAX = Number.MAX_SAFE_INTEGER;

export async function runReplay(request: ReplayRequest): Promise<ReplaySummary> {
  const startedAt = performance.now();
  const { config } = request;
  const target = parseOutputTarget(request.out, config.dataDir);
  const gateway = expandInputs(request.gateway).map(describeFile);
  const business = expandInputs(request.business).map(describeFile);
  if (gateway.length + business.length === 0) throw new UsageError('nothing to replay: give gateway logs with --gateway and/or business logs with --business');
  const since = request.since ?? TIME_MIN;
  const until = request.until ?? TIME_MAX;
  if (since >= until) throw new UsageError(`--since (${since}) must be before --until (${until})`);

  // The target's own key first (its online samples use it), then the engine's data dir given with --data-dir.
  const keyDirs = target.kind === 'embedded' ? [target.dataDir, config.dataDir] : [config.dataDir];
  const privacy = replayPrivacySettings(config, keyDirs, target.kind === 'embedded' ? target.dataDir : undefined);
  const tempRoot = mkdtempSync(join(request.tempDir ?? config.replay.tempDir ?? tmpdir(), 'sampleloop-replay-'));
  const replayConfig: SampleloopConfig = {
    ...config,
    dataDir: join(tempRoot, 'data'),
    privacy,
    embedded: { ...config.embedded, syncWrites: false, retentionMs: null },
    // Only the samples topology: no inference, retrain triggers or training on replayed traffic.
    predictor: { ...config.predictor, enabled: false },
    trigger: { ...config.trigger, enabled: false },
    trainer: { ...config.trainer, enabled: false },
  };
  const checkAborted = (): void => {
    if (request.signal?.aborted) throw new ClosedError('replay interrupted: nothing was written to the target');
  };
  const progress = new ReplayProgress({ enabled: request.progress?.enabled ?? false, stream: request.progress?.stream ?? process.stderr, intervalMs: config.replay.progressIntervalMs });
  let sink: ReplaySink | undefined;
  let rejects: JsonLinesFile | undefined;
  let staging: ReplayStaging | undefined;
  let app: EmbeddedApp | undefined;
  try {
    replayPrivacyPolicy(replayConfig, keyDirs);
    sink = await openSink(target, config);
    rejects = new JsonLinesFile(request.rejects ?? sink.defaultRejectsPath);
    staging = await ReplayStaging.open(join(tempRoot, 'staging'));

    const phaseStart = performance.now();
    progress.start('1/3 reading', 'bytes', [...gateway, ...business].reduce((s, f) => s + f.bytes, 0));
    const rejectsFile = rejects;
    const stats = await stageArchive({
      gateway,
      business,
      mapping: request.mapping ?? emptyMapping(),
      delimiter: request.delimiter ?? ',',
      maxRecordBytes: config.input.maxRecordBytes,
      ranges: {
        predictions: { from: since, to: until },
        feedback: { from: Math.max(TIME_MIN, since - config.join.beforeMs), to: Math.min(TIME_MAX, until + config.join.afterMs) },
      },
      strict: request.strict ?? false,
      staging,
      reject: (line: RejectedLine) => rejectsFile.write(line),
      progress: (bytes, records) => {
        checkAborted();
        progress.update(bytes, records);
      },
    });
    progress.end();
    await copySorted(staging, replayConfig);
    const readDone = performance.now();

    app = await startEmbeddedApp(replayConfig, { logger: request.logger ?? silentLogger(), metrics: new EngineMetrics(), origin: 'replay' });
    const staged = stats.staged.predictions + stats.staged.feedback;
    progress.start('2/3 joining', 'records', staged);
    let processed = 0;
    for (;;) {
      const n = await app.runtime.stepAsync();
      if (n === 0) break;
      processed += n;
      progress.update(processed, processed);
      await yieldToEventLoop();
      checkAborted();
    }
    app.runtime.endOfInput();
    progress.end();
    const joinDone = performance.now();

    const exported = await exportOutputs(app, staging, sink, replayConfig, progress, checkAborted);
    await app.close();
    app = undefined;
    await sink.commit();
    await rejects.commit();
    const seconds = (performance.now() - startedAt) / 1000;
    return {
      target: request.out,
      outputs: sink.locations,
      rejectsFile: rejects.path,
      files: { gateway: gateway.length, business: business.length },
      bytes: [...gateway, ...business].reduce((s, f) => s + f.bytes, 0),
      records: stats.records,
      staged: stats.staged,
      rejected: stats.rejected,
      rejectedByReason: stats.rejectedByReason,
      outOfRange: stats.outOfRange,
      written: exported.written,
      samplesEmitted: exported.samplesEmitted,
      seconds,
      phases: { read: (readDone - phaseStart) / 1000, join: (joinDone - readDone) / 1000, write: (performance.now() - joinDone) / 1000 },
      recordsPerSecond: (stats.records.gateway + stats.records.business) / Math.max(seconds, 1e-6),
    };
  } catch (err) {
    await sink?.abort();
    // The rejects of a failed run (e.g. --strict) are the explanation: keep them.
    await rejects?.commit().catch(() => undefined);
    throw err;
  } finally {
    progress.stop();
    if (app) await app.close().catch(() => undefined);
    await staging?.close();
    rmSync(tempRoot, { recursive: true, force: true });
  }
}

/** Staged records → the input topics, in event-time order per partition (the partition follows the key, as online). */
async function copySorted(staging: ReplayStaging, config: SampleloopConfig): Promise<void> {
  const streams: Array<[number, string]> = [
    [PREDICTIONS_STREAM, config.topics.predictions],
    [FEEDBACK_STREAM, config.topics.feedback],
  ];
  const log = await openEmbeddedLog(config);
  try {
    for (const [stream, topic] of streams) {
      log.ensureTopic(topic, { partitions: config.embedded.partitions });
      for (const page of staging.sorted(stream)) {
        log.append(
          page.map(({ value }) => {
            const entry = decodeEntry(value);
            return { topic, key: entry.key, value: entry.value, timestamp: entry.timestamp, headers: entry.headers };
          }),
        );
      }
    }
  } finally {
    await log.close();
  }
}

/** Samples: latest per request ID (what compaction keeps), in request-ID order. Side outputs: every record, in log order. */
async function exportOutputs(
  app: EmbeddedApp,
  staging: ReplayStaging,
  sink: ReplaySink,
  config: SampleloopConfig,
  progress: ReplayProgress,
  checkAborted: () => void,
): Promise<{ written: Record<ReplayOutput, number>; samplesEmitted: number }> {
  const { log, registry } = app;
  const topics: Record<ReplayOutput, string> = {
    samples: config.topics.samples,
    unmatched: config.topics.unmatched,
    orphans: config.topics.orphans,
    late: config.topics.late,
    review: config.topics.review,
    deadLetters: config.topics.deadLetters,
  };
  const written = { samples: 0, unmatched: 0, orphans: 0, late: 0, review: 0, deadLetters: 0 } as Record<ReplayOutput, number>;
  let total = 0;
  for (const topic of Object.values(topics)) total += endOffsets(log, topic);
  progress.start('3/3 writing', 'records', total);
  let done = 0;

  let samplesEmitted = 0;
  for (const record of records(log, topics.samples)) {
    if (record.key === null) continue;
    samplesEmitted++;
    staging.putLatest(record.key, encodeEntry(record));
    progress.update(++done, done);
  }
  for (const page of staging.latest()) {
    checkAborted();
    for (const [key, value] of page) {
      const entry = decodeEntry(value);
      await sink.write('samples', { topic: topics.samples, partition: 0, offset: written.samples, key, value: entry.value, timestamp: entry.timestamp, headers: entry.headers }, registry);
      written.samples++;
    }
  }
  for (const output of SIDE_OUTPUTS) {
    checkAborted();
    for (const record of records(log, topics[output])) {
      await sink.write(output, record, registry);
      written[output]++;
      progress.update(++done, done);
    }
  }
  progress.end();
  return { written, samplesEmitted };
}

function endOffsets(log: EmbeddedLog, topic: string): number {
  const config = log.topic(topic);
  let n = 0;
  for (let p = 0; p < (config?.partitions ?? 0); p++) n += log.endOffset(topic, p);
  return n;
}

/** Every record of a topic, partition by partition in offset order, read in pages. */
function* records(log: EmbeddedLog, topic: string): Generator<SourceRecord> {
  const config = log.topic(topic);
  if (!config) return;
  for (let p = 0; p < config.partitions; p++) {
    let from = 0;
    for (;;) {
      const page = log.read(topic, p, from, STAGING_PAGE);
      for (const r of page) yield r;
      if (page.length < STAGING_PAGE) break;
      from = (page[page.length - 1] as SourceRecord).offset + 1;
    }
  }
}
