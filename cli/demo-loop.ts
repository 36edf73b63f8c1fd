/**
 * The demo's closed loop on the embedded engine: seed models published, the planned traffic sent
 * slice by slice of simulated time, predictions answered with feedback, the trainer run after every
 * slice and each of its decisions reported.
 */
import type { SampleloopConfig } from '../config/config.js';
import type { LogAccess } from '../access/embedded.js';
import { ingressAccess, type EmbeddedApp } from '../app/embedded.js';
import { UsageError } from '../engine/errors.js';
import type { OutputRecord, SourceRecord } from '../engine/record.js';
import { ledgerKeysFor, publishVersion, readLedger, trustPolicyFor, type LedgerView } from '../models/ledger.js';
import { trainLogistic, type TrainOptions } from '../models/logistic-regression.js';
import { exportOnnx } from '../models/onnx-export.js';
import { onnxHoldoutAccuracy, type TrainerDecision, type TrainerJob } from '../models/trainer-job.js';
import { decodeFramed } from '../schemas/codec.js';
import type { Feedback, LabeledSample, ModelVersion, Prediction, RetrainTrigger } from '../schemas/types.js';
import { percent, type CategoryRun, type PromotionReport } from './demo-report.js';
import { BASE_TIME, brokenRecords, feedbackFor, SEED_TRAINER, SLICE_MS, type DatasetSplit, type PlannedRequest } from './demo-traffic.js';

/** Reads what was appended to a topic since the last call (every partition, in offset order). */
class TopicTail {
  private readonly positions: number[] = [];

  constructor(
    private readonly app: EmbeddedApp,
    private readonly topic: string,
  ) {}

  next(): SourceRecord[] {
    const partitions = this.app.log.topic(this.topic)?.partitions ?? 0;
    const out: SourceRecord[] = [];
    for (let p = 0; p < partitions; p++) {
      for (;;) {
        const records = this.app.log.read(this.topic, p, this.positions[p] ?? 0, 5_000);
        if (records.length === 0) break;
        for (const r of records) out.push(r);
        this.positions[p] = (records[records.length - 1] as SourceRecord).offset + 1;
      }
    }
    return out;
  }

  decoded<T>(): T[] {
    const lookup = (id: number): ReturnType<EmbeddedApp['registry']['cached']> => this.app.registry.cached(id);
    return this.next().flatMap((r) => (r.value === null ? [] : [decodeFramed(r.value, lookup).value as T]));
  }
}

// ---------------------------------------------------------------------------------------------
// The run

async function testAccuracy(bytes: Uint8Array, data: DatasetSplit, version?: Pick<ModelVersion, 'featureNames' | 'classes'>): Promise<number> {
  return onnxHoldoutAccuracy(bytes, data.testRows, version ? { featureNames: version.featureNames, classes: version.classes } : {});
}

function trainOptions(config: SampleloopConfig): TrainOptions {
  return { l2: config.trainer.l2, maxIterations: config.trainer.maxIterations, tolerance: config.trainer.tolerance };
}

/**
 * Drives the engine through simulated time: sends requests, answers predictions with feedback,
 * and lets the trainer handle triggers after every slice, reporting each decision.
 */
export class ClosedLoop {
  readonly access: LogAccess;
  readonly runs = new Map<string, CategoryRun>();
  readonly decisions: TrainerDecision[] = [];
  private readonly trainer: TrainerJob;
  private readonly byId: Map<string, PlannedRequest>;
  private readonly predictions: TopicTail;
  private readonly samples: TopicTail;
  private readonly triggers: TopicTail;
  private readonly triggerById = new Map<string, RetrainTrigger>();
  private readonly pendingFeedback: Feedback[] = [];
  private sent = 0;

  constructor(
    private readonly app: EmbeddedApp,
    private readonly config: SampleloopConfig,
    private readonly plan: readonly PlannedRequest[],
    private readonly clock: { now: number },
    private readonly say: (line: string) => void,
  ) {
    if (!app.trainer) throw new UsageError('the demo needs the built-in trainer (trainer.enabled)');
    this.trainer = app.trainer;
    this.access = ingressAccess(app, () => clock.now);
    this.byId = new Map(plan.map((r) => [r.requestId, r]));
    this.predictions = new TopicTail(app, config.topics.predictions);
    this.samples = new TopicTail(app, config.topics.samples);
    this.triggers = new TopicTail(app, config.topics.retrainTriggers);
  }

  /** Trains a model per category on its labeled seed and publishes it as version 1; trains the oracle for comparison. */
  async publishSeeds(data: readonly DatasetSplit[]): Promise<void> {
    this.say('seed models, published to the model ledger as version 1 (test-set accuracy):');
    const options = trainOptions(this.config);
    for (const d of data) {
      const { dataset } = d;
      const onnx = exportOnnx(trainLogistic(d.seed, dataset.featureNames, dataset.classes, options), { version: '1', category: dataset.name });
      await publishVersion(
        this.access,
        { category: dataset.name, version: '1', onnx, featureNames: dataset.featureNames, classes: dataset.classes, metrics: { trainSize: d.seed.length }, trainer: SEED_TRAINER, createdAt: this.clock.now },
        { topic: this.config.topics.models, ...ledgerKeysFor(this.config, { generate: true }) },
      );
      const seedAccuracy = await testAccuracy(onnx, d);
      const oracle = exportOnnx(trainLogistic(d.pool, dataset.featureNames, dataset.classes, options), { version: 'oracle', category: dataset.name });
      const oracleAccuracy = await testAccuracy(oracle, d);
      this.runs.set(dataset.name, {
        data: d,
        seedAccuracy,
        oracleAccuracy,
        points: [{ samples: 0, accuracy: seedAccuracy, label: 'v1 (seed)' }],
        promotions: [],
        rejectedAt: [],
        skipped: 0,
        requests: this.plan.filter((r) => r.category === dataset.name).length,
        servingVersion: '1',
        live: [0, 0],
        samples: new Set(),
      });
      this.say(`  ${dataset.name.padEnd(14)} ${percent(seedAccuracy).padStart(6)}  (trained on ${d.seed.length} labeled rows; oracle trained on all ${d.pool.length} pool labels: ${percent(oracleAccuracy)})`);
    }
  }

  /** Slice by slice of simulated time until every request is sent and every feedback delivered. */
  async runTraffic(): Promise<void> {
    const { plan } = this;
    const progressEvery = Math.max(1, Math.ceil(plan.length / 10));
    let nextProgress = Math.min(progressEvery, plan.length);
    for (let sliceStart = BASE_TIME; this.sent < plan.length || this.pendingFeedback.length > 0; sliceStart += SLICE_MS) {
      const sliceEnd = sliceStart + SLICE_MS;
      const records: OutputRecord[] = [];
      if (sliceStart === BASE_TIME && plan[0]) records.push(...brokenRecords(this.config, plan[0]));
      while (this.sent < plan.length && (plan[this.sent] as PlannedRequest).timestamp < sliceEnd) records.push(this.requestRecord(plan[this.sent++] as PlannedRequest));
      this.pendingFeedback.sort((a, b) => a.timestamp - b.timestamp);
      while (this.pendingFeedback.length > 0 && (this.pendingFeedback[0] as Feedback).timestamp < sliceEnd) records.push(this.feedbackRecord(this.pendingFeedback.shift() as Feedback));
      if (records.length > 0) {
        const sorted = records.sort((a, b) => a.timestamp - b.timestamp);
        this.app.log.append(this.app.ingest ? this.app.ingest.protectRecords(sorted) : sorted);
      }
      this.clock.now = sliceEnd;
      await this.settle();
      await this.train();
      if (this.sent >= nextProgress) {
        this.progress();
        nextProgress = this.sent >= plan.length ? Number.POSITIVE_INFINITY : Math.min(nextProgress + progressEvery, plan.length);
      }
    }
  }

  /** Closes the join windows still open; later, the age rule retrains categories on the samples left. */
  async finish(): Promise<void> {
    const { join, trigger } = this.config;
    this.say('traffic over: the join windows still open are closed (predictions without feedback go to unmatched)');
    this.clock.now += join.afterMs + join.graceMs;
    this.app.runtime.endOfInput();
    await this.settle();
    await this.train();
    if (trigger.maxAgeMs === null) return;
    this.say(`${trigger.maxAgeMs / 60_000} simulated minutes later: the age rule retrains categories with ${trigger.minNewSamplesForAge}+ samples not yet trained on`);
    this.clock.now += trigger.maxAgeMs + trigger.checkIntervalMs;
    await this.settle();
    await this.train();
  }

  private requestRecord(r: PlannedRequest): OutputRecord {
    const value = { requestId: r.requestId, category: r.category, features: r.features, attributes: r.attributes, timestamp: r.timestamp, source: 'demo-gateway' };
    return { topic: this.config.topics.requests, key: Buffer.from(r.requestId), value: Buffer.from(JSON.stringify(value)), timestamp: r.timestamp, headers: {} };
  }

  private feedbackRecord(f: Feedback): OutputRecord {
    return { topic: this.config.topics.feedback, key: Buffer.from(f.requestId), value: Buffer.from(JSON.stringify(f)), timestamp: f.timestamp, headers: {} };
  }

  private run(category: string): CategoryRun {
    const run = this.runs.get(category);
    if (!run) throw new UsageError(`no demo category "${category}"`);
    return run;
  }

  /** Runs every topology until no input is left anywhere (one's outputs reach the next after each commit), then reads what came out. */
  private async settle(): Promise<void> {
    while ((await this.app.runtime.runUntilIdleAsync()) > 0) {
      // another pass: the last one produced input for another topology
    }
    for (const p of this.predictions.decoded<Prediction>()) {
      const request = this.byId.get(p.requestId);
      if (!request) continue;
      const run = this.run(p.category);
      run.servingVersion = p.modelVersion;
      run.live[1]++;
      if (p.predictedLabel === request.row.label) run.live[0]++;
      this.pendingFeedback.push(...feedbackFor(request, p.predictedLabel));
    }
    for (const s of this.samples.decoded<LabeledSample>()) this.runs.get(s.category)?.samples.add(s.requestId);
    for (const t of this.triggers.decoded<RetrainTrigger>()) this.triggerById.set(t.triggerId, t);
  }

  /** Lets the trainer handle every waiting trigger; after a promotion the next requests are served by the new version. */
  private async train(): Promise<void> {
    for (;;) {
      const decided = await this.trainer.processPending();
      if (decided.length === 0) return;
      this.decisions.push(...decided);
      const ledger = await readLedger(this.access, this.config.topics.models, trustPolicyFor(this.config, { generate: false }));
      for (const d of decided) await this.report(d, ledger);
      await this.settle();
    }
  }

  private async report(d: TrainerDecision, ledger: LedgerView): Promise<void> {
    const run = this.run(d.category);
    const reason = this.triggerById.get(d.triggerId)?.reason ?? 'unknown reason';
    if (d.decision === 'promoted') {
      const version = ledger.byCategory.get(d.category)?.find((v) => v.verification.ok && v.version?.version === d.candidateVersion)?.version;
      if (!version?.onnx) throw new UsageError(`promoted version ${d.category}/${d.candidateVersion} is not in the ledger`);
      const { metrics } = version;
      const promotion: PromotionReport = {
        version: version.version,
        triggerId: d.triggerId,
        reason,
        sampleCount: version.trainingSnapshot?.sampleCount ?? d.sampleCount,
        holdoutAccuracy: metrics.holdoutAccuracy ?? Number.NaN,
        servingHoldoutAccuracy: metrics.servingHoldoutAccuracy ?? null,
        holdoutSize: metrics.holdoutSize ?? d.holdoutSize,
        testAccuracy: await testAccuracy(version.onnx, run.data, version),
        modelSha256: version.modelSha256,
      };
      run.promotions.push(promotion);
      run.points.push({ samples: promotion.sampleCount, accuracy: promotion.testAccuracy, label: `v${promotion.version}` });
      const vs = promotion.servingHoldoutAccuracy === null ? '' : ` vs ${percent(promotion.servingHoldoutAccuracy)} for v${d.servingVersion}`;
      const evidence = d.gate?.pValue != null ? ` (McNemar p = ${formatP(d.gate.pValue)})` : '';
      this.say(
        `  promoted ${d.category} v${promotion.version} after ${promotion.sampleCount} samples (${reason}): holdout ${percent(promotion.holdoutAccuracy)}${vs} on ${promotion.holdoutSize} held-out samples${evidence} -> test-set accuracy ${percent(promotion.testAccuracy)}`,
      );
    } else if (d.decision === 'rejected') {
      run.rejectedAt.push(d.sampleCount);
      const evidence = d.gate?.pValue != null ? `McNemar p = ${formatP(d.gate.pValue)}, not < ${d.gate.threshold}` : 'not better';
      this.say(
        `  rejected ${d.category} candidate v${d.candidateVersion} after ${d.sampleCount} samples (${reason}): holdout ${percent(d.candidateAccuracy ?? 0)} vs ${percent(d.servingAccuracy ?? 0)} for v${d.servingVersion} (${evidence}), which keeps serving`,
      );
    } else {
      run.skipped++;
      this.say(`  ${d.decision} ${d.category} trigger ${d.triggerId} (${reason}): ${d.message}`);
    }
  }

  private progress(): void {
    const runs = [...this.runs.values()];
    const live = runs.map((r) => `${r.data.dataset.name} ${r.live[1] === 0 ? '-' : percent(r.live[0] / r.live[1])} (v${r.servingVersion})`).join(', ');
    const counts = runs.map((r) => `${r.data.dataset.name} ${r.samples.size}`).join(', ');
    const width = String(this.plan.length).length;
    this.say(`  traffic: ${percent(this.sent / this.plan.length, 0).padStart(4)} | ${String(this.sent).padStart(width)}/${this.plan.length} requests | live accuracy since last line: ${live} | samples: ${counts}`);
    for (const r of runs) r.live = [0, 0];
  }
}

// ---------------------------------------------------------------------------------------------
// Summary, leak scan, chart

function formatP(p: number): string {
  return p < 0.001 ? p.toExponential(1) : p.toFixed(3);
}
