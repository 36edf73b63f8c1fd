/**
 * The built-in trainer (docs/retraining.md): consumes `retrain-triggers`, trains a logistic regression
 * on the category's samples up to the trigger's snapshot, and promotes the candidate through the
 * model ledger only when the promotion gate finds it better than the serving version on the same holdout.
 *
 * This file is the polling job; one trigger is handled in train-on-trigger.ts. The trainer's other
 * modules are re-exported here, so callers import the trainer from one place.
 */
import { trainerSettingsFor } from '../config/category-settings.js';
import type { SampleloopConfig } from '../config/config.js';
import { DecodeError, errorMessage, SampleloopError } from '../engine/errors.js';
import { directAccess } from '../access/embedded.js';
import type { EmbeddedLog } from '../engine/embedded/log.js';
import { silentLogger, type Logger } from '../engine/logger.js';
import type { EngineMetrics } from '../engine/metrics.js';
import type { ProcessorMetrics } from '../engine/processor.js';
import type { OutputRecord } from '../engine/record.js';
import { decodeLoggedValue } from '../processors/retrain-trigger-events.js';
import type { WriterSchemaLookup } from '../schemas/codec.js';
import type { SchemaRegistry } from '../schemas/registry.js';
import type { RetrainTrigger } from '../schemas/types.js';
import { ledgerClient, ledgerKeysFor } from './ledger.js';
import { trainOnTrigger } from './train-on-trigger.js';
import { blankDecision, type DecisionKind, type TrainerDecision, type TrainerProgress } from './trainer-decision.js';
import { embeddedTrainerLog, type LedgerPort, type TrainerLog, type TrainerSettings } from './trainer-ports.js';

export { onnxHoldoutAccuracy, onnxHoldoutResults, versionOnnxBytes } from './holdout-evaluation.js';
export { judgeCandidate, mcnemarExactPValue, type GateSettings, type GateStatistic, type GateVerdict, type PromotionTest } from './promotion-gate.js';
export { trainOnTrigger, type TrainingOutcome, type TrainOnTriggerDeps } from './train-on-trigger.js';
export { blankDecision, type DecisionKind, type TrainerDecision, type TrainerProgress } from './trainer-decision.js';
export { embeddedTrainerLog, TRAINER_ID, type LedgerPort, type NewModelVersion, type TrainerLog, type TrainerSettings } from './trainer-ports.js';
export { buildTrainingSet, naturalCompare, readSnapshotSamples, splitHoldout, type TrainingRow, type TrainingSet } from './training-set.js';

export interface TrainerJobOptions {
  log: TrainerLog;
  writerSchema: WriterSchemaLookup;
  ledger: LedgerPort;
  settings: TrainerSettings;
  /** A category's settings (its `categories.<name>.trainer` overrides); default: `settings`. */
  settingsFor?: (category: string) => TrainerSettings;
  topics: { triggers: string; /** null: decisions are only logged. */ decisions: string | null };
  /** Names the consumer group `<applicationId>.trainer`. */
  applicationId: string;
  classesFor?: (category: string) => readonly string[] | undefined;
  logger?: Logger;
  metrics?: EngineMetrics;
  now?: () => number;
  onProgress?: (progress: TrainerProgress) => void;
}

/**
 * Reads `retrain-triggers` from the committed position of group `<applicationId>.trainer`, handles
 * each trigger, then commits the decision record and the new position in one atomic write. When a
 * category has several triggers waiting, only the newest is trained (the others are `superseded`).
 * Re-handling a trigger after a crash is harmless: a version already trained on the same snapshot is
 * detected in the ledger (`already-trained`).
 */
export class TrainerJob {
  readonly group: string;
  private readonly logger: Logger;
  private readonly metrics: ProcessorMetrics | undefined;
  private readonly now: () => number;

  constructor(private readonly options: TrainerJobOptions) {
    this.group = `${options.applicationId}.trainer`;
    this.logger = options.logger ?? silentLogger();
    this.metrics = options.metrics?.forProcessor('trainer', 'trainer-job');
    this.now = options.now ?? Date.now;
  }

  /** Handles every trigger waiting now; resolves to the decisions made, in order. */
  async processPending(): Promise<TrainerDecision[]> {
    const { log, topics } = this.options;
    const owned = log.ownedPartitions ? await log.ownedPartitions(topics.triggers) : [...Array(await log.partitions(topics.triggers)).keys()];
    const decisions: TrainerDecision[] = [];
    for (const p of owned) {
      const from = (await log.committedOffset(this.group, topics.triggers, p)) ?? 0;
      const records = await log.read(topics.triggers, p, from, 1000);
      const triggers = records.map((r) => ({ offset: r.offset, trigger: this.decodeTrigger(r.value, p, r.offset) }));
      const newest = new Map<string, number>();
      for (const t of triggers) if (t.trigger) newest.set(t.trigger.category, t.offset);
      for (const { offset, trigger } of triggers) {
        let decision: TrainerDecision | undefined;
        if (trigger && newest.get(trigger.category) !== offset) {
          decision = this.plainDecision(trigger, 'skipped', 'superseded', 'a newer trigger of the category is waiting');
          this.report(decision);
        } else if (trigger) {
          decision = await this.handle(trigger);
          if (decision === undefined) return decisions; // retriable failure: try again on the next poll
        }
        await this.commit(p, offset + 1, decision);
        if (decision) decisions.push(decision);
      }
    }
    return decisions;
  }

  /** Polls for triggers until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let handled = 0;
      try {
        handled = (await this.processPending()).length;
      } catch (err) {
        this.logger.error({ err }, 'trainer: polling failed');
      }
      if (handled === 0 && !signal.aborted) await this.options.log.waitForAppend(this.options.settings.pollIntervalMs);
    }
  }

  private async handle(trigger: RetrainTrigger): Promise<TrainerDecision | undefined> {
    const started = Date.now();
    try {
      const { decision } = await trainOnTrigger(trigger, {
        log: this.options.log,
        writerSchema: this.options.writerSchema,
        ledger: this.options.ledger,
        settings: this.options.settingsFor?.(trigger.category) ?? this.options.settings,
        logger: this.logger,
        now: this.now,
        ...(this.options.classesFor ? { classesFor: this.options.classesFor } : {}),
        ...(this.options.onProgress ? { onProgress: this.options.onProgress } : {}),
      });
      this.metrics?.observe('training-seconds', (Date.now() - started) / 1000);
      this.report(decision);
      return decision;
    } catch (err) {
      if (err instanceof SampleloopError && err.retriable) {
        this.logger.warn({ err, triggerId: trigger.triggerId }, 'trainer: retriable failure; the trigger will be handled again');
        this.metrics?.count('retried');
        return undefined;
      }
      const decision = this.plainDecision(trigger, 'failed', 'error', errorMessage(err));
      this.logger.error({ err, triggerId: trigger.triggerId, category: trigger.category }, 'trainer: trigger failed');
      this.report(decision);
      return decision;
    }
  }

  private report(decision: TrainerDecision): void {
    this.metrics?.count(decision.decision);
    this.metrics?.note('decision', {
      category: decision.category,
      decision: decision.decision,
      reason: decision.reason,
      candidateVersion: decision.candidateVersion,
      candidateAccuracy: decision.candidateAccuracy,
      servingVersion: decision.servingVersion,
      servingAccuracy: decision.servingAccuracy,
      holdoutSize: decision.holdoutSize,
      sampleCount: decision.sampleCount,
      decidedAt: decision.decidedAt,
    });
    const fields = { ...decision };
    if (decision.decision === 'promoted') this.logger.info(fields, 'trainer: candidate promoted');
    else if (decision.decision === 'rejected') this.logger.warn(fields, 'trainer: candidate rejected by the promotion gate');
    else this.logger.info(fields, `trainer: trigger ${decision.decision}`);
  }

  private plainDecision(trigger: RetrainTrigger, kind: DecisionKind, reason: string, message: string): TrainerDecision {
    const decision = blankDecision({ triggerId: trigger.triggerId, category: trigger.category, candidateVersion: '', servingVersion: trigger.servingVersion }, this.now());
    return { ...decision, decision: kind, reason, message };
  }

  private decodeTrigger(bytes: Buffer | null, partition: number, offset: number): RetrainTrigger | undefined {
    try {
      if (bytes === null) throw new DecodeError('empty record');
      const value = decodeLoggedValue(bytes, this.options.writerSchema) as Partial<RetrainTrigger> | null;
      const snapshot = value?.snapshot;
      if (typeof value?.triggerId !== 'string' || typeof value.category !== 'string' || typeof snapshot?.topic !== 'string' || !Array.isArray(snapshot.offsets)) {
        throw new DecodeError('not a RetrainTrigger (triggerId, category and snapshot are required)');
      }
      const sampleCount = typeof snapshot.sampleCount === 'number' ? snapshot.sampleCount : 0;
      return { servingVersion: '', reason: '', details: {}, createdAt: 0, ...value, snapshot: { topic: snapshot.topic, offsets: snapshot.offsets, sampleCount } } as RetrainTrigger;
    } catch (err) {
      this.metrics?.count('undecodable-trigger');
      this.logger.error({ err, topic: this.options.topics.triggers, partition, offset }, 'trainer: skipping a record that is not a RetrainTrigger');
      return undefined;
    }
  }

  private async commit(partition: number, next: number, decision: TrainerDecision | undefined): Promise<void> {
    const outputs: OutputRecord[] = [];
    const { decisions } = this.options.topics;
    if (decision && decisions !== null) {
      outputs.push({ topic: decisions, key: Buffer.from(decision.category, 'utf8'), value: Buffer.from(JSON.stringify(decision), 'utf8'), timestamp: decision.decidedAt, headers: {} });
    }
    await this.options.log.commit(outputs, [{ group: this.group, topic: this.options.topics.triggers, partition, offset: next }]);
  }
}

/** Runs the job next to the engine; `stop()` aborts the loop and waits for the trigger in progress. */
export function startTrainerLoop(job: TrainerJob, logger: Logger = silentLogger()): { stop(): Promise<void> } {
  const controller = new AbortController();
  const done = job.run(controller.signal).catch((err: unknown) => logger.error({ err }, 'trainer loop stopped'));
  return {
    stop: async () => {
      controller.abort();
      await done;
    },
  };
}

export function trainerSettingsFromConfig(config: SampleloopConfig): TrainerSettings {
  return trainerSettingsFor(config);
}

export interface EmbeddedTrainerOptions {
  /** Replaces the ledger on the models topic (tests). */
  ledger?: LedgerPort;
  onProgress?: (progress: TrainerProgress) => void;
  /** false: do not poll; the caller drives `job.processPending()` (tests). Default true. */
  loop?: boolean;
}

/**
 * The trainer of `startEmbeddedApp` (when `trainer.enabled`): reads the app's log, publishes through
 * the ledger on the models topic (or `deps.ledger`), and runs until `stop()`.
 */
export function startEmbeddedTrainer(
  config: SampleloopConfig,
  deps: { log: EmbeddedLog; registry: SchemaRegistry; logger?: Logger; metrics?: EngineMetrics; now?: () => number } & EmbeddedTrainerOptions,
): { job: TrainerJob; stop(): Promise<void> } {
  const now = deps.now ?? Date.now;
  const job = new TrainerJob({
    log: embeddedTrainerLog(deps.log, [config.topics.retrainTriggers, config.topics.trainerDecisions]),
    writerSchema: (id) => deps.registry.cached(id),
    ledger: deps.ledger ?? ledgerClient(directAccess(deps.log, deps.registry, now), config.topics.models, ledgerKeysFor(config, { generate: true })),
    settings: trainerSettingsFromConfig(config),
    settingsFor: (category) => trainerSettingsFor(config, category),
    topics: { triggers: config.topics.retrainTriggers, decisions: config.topics.trainerDecisions },
    applicationId: config.applicationId,
    classesFor: (category) => config.categories[category]?.classes,
    now,
    ...(deps.logger ? { logger: deps.logger } : {}),
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
    ...(deps.onProgress ? { onProgress: deps.onProgress } : {}),
  });
  if (deps.loop === false) return { job, stop: () => Promise.resolve() };
  return { job, stop: startTrainerLoop(job, deps.logger).stop };
}
