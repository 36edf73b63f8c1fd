import { performance } from 'node:perf_hooks';
import { errorMessage } from '../engine/errors.js';
import type { BatchOutcome, BatchProcessor, ProcessorContext } from '../engine/processor.js';
import type { StreamRecord } from '../engine/record.js';
import type { ModelEvent, ModelRegistry, ServedModel } from '../models/model-registry.js';
import type { Prediction, Request } from '../schemas/types.js';

/** How a prediction's `timestamp` (its event time, tp) is chosen. */
export type PredictionTimestamp = 'request-plus-latency' | 'wall-clock';

export interface PredictorOptions {
  models: ModelRegistry;
  /** Values for missing features: per category, `"*"` for every category (a category's own entry wins). */
  featureDefaults?: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /**
   * `request-plus-latency` (default): the request's timestamp plus the inference time of its batch
   * (whole milliseconds), so event time stays tied to the request when traffic is replayed or delayed.
   * `wall-clock`: the time the prediction was made.
   */
  timestamp?: PredictionTimestamp;
  now?: () => number;
}

type Outcome = BatchOutcome<Prediction>;

interface Group {
  served: ServedModel;
  indexes: number[];
  rows: Float64Array[];
}

/**
 * Request → Prediction with ONNX models from the model registry. Each batch: refresh the registry
 * (hot swap), group the records by the model serving them, run ONE `predictBatch` per model, then
 * emit a prediction per record in input order. Records the predictor cannot serve are dead letters
 * (`unknown-category`, `missing-feature`, `inference-failed`, `non-finite-score`) carrying the decoded
 * request, whose sensitive attributes decode has already protected.
 */
export class PredictorProcessor implements BatchProcessor<Request, Prediction> {
  readonly kind = 'batch' as const;
  private ctx!: ProcessorContext<Prediction>;
  private readonly now: () => number;

  constructor(private readonly options: PredictorOptions) {
    this.now = options.now ?? Date.now;
  }

  init(ctx: ProcessorContext<Prediction>): void {
    this.ctx = ctx;
  }

  async processBatch(records: ReadonlyArray<StreamRecord<Request>>): Promise<Outcome[][]> {
    this.report(await this.options.models.refresh());
    const outcomes: Outcome[][] = records.map(() => []);
    const groups = new Map<ServedModel, Group>();
    records.forEach((record, i) => {
      const request = record.value;
      const served = this.options.models.resolve(request.category);
      if (!served) {
        outcomes[i] = [this.reject('unknown-category', `no model serves the request's category (it is in the payload)${this.servingList()}`, request)];
        return;
      }
      const row = this.featureRow(request, served);
      if (typeof row === 'string') {
        outcomes[i] = [this.reject('missing-feature', row, request)];
        return;
      }
      let group = groups.get(served);
      if (!group) {
        group = { served, indexes: [], rows: [] };
        groups.set(served, group);
      }
      group.indexes.push(i);
      group.rows.push(row);
    });
    const { models } = this.options;
    for (const group of groups.values()) models.hold(group.served);
    try {
      for (const group of groups.values()) await this.predictGroup(group, records, outcomes);
    } finally {
      for (const group of groups.values()) await models.release(group.served);
    }
    return outcomes;
  }

  private async predictGroup(group: Group, records: ReadonlyArray<StreamRecord<Request>>, outcomes: Outcome[][]): Promise<void> {
    const { served } = group;
    const started = performance.now();
    let predictions;
    try {
      predictions = await this.options.models.predict(served, group.rows);
    } catch (err) {
      this.ctx.logger.error({ err, category: served.category, version: served.version, rows: group.rows.length }, 'model inference failed; the batch goes to the dead-letter topic');
      for (const i of group.indexes) outcomes[i] = [this.reject('inference-failed', `model ${served.category}/${served.version} failed: ${errorMessage(err)}`, (records[i] as StreamRecord<Request>).value)];
      return;
    }
    const latencyMs = performance.now() - started;
    this.ctx.metrics.observe('inference-seconds', latencyMs / 1000);
    const wallClock = this.now();
    let predicted = 0;
    group.indexes.forEach((i, j) => {
      const record = records[i] as StreamRecord<Request>;
      const request = record.value;
      const p = predictions[j];
      if (!p) {
        outcomes[i] = [this.reject('inference-failed', `model ${served.category}/${served.version} returned no result for this row`, request)];
        return;
      }
      const bad = Object.entries(p.scores).find(([, v]) => !Number.isFinite(v));
      if (bad) {
        outcomes[i] = [this.reject('non-finite-score', `model ${served.category}/${served.version} gave score ${bad[1]} for "${bad[0]}"`, request)];
        return;
      }
      const timestamp = this.options.timestamp === 'wall-clock' ? wallClock : request.timestamp + Math.round(latencyMs);
      const value: Prediction = {
        requestId: request.requestId,
        category: request.category,
        features: request.features,
        attributes: request.attributes,
        predictedLabel: p.label,
        scores: p.scores,
        modelVersion: served.version,
        modelHash: served.modelSha256,
        requestTimestamp: request.timestamp,
        timestamp,
      };
      outcomes[i] = [{ kind: 'forward', record: { key: request.requestId, value, timestamp, headers: record.headers } }];
      predicted++;
    });
    this.ctx.metrics.count('predicted', predicted);
  }

  /** The model's input row, in its feature order; extra request features are ignored. */
  private featureRow(request: Request, served: ServedModel): Float64Array | string {
    const defaults = this.options.featureDefaults;
    const own = defaults?.[request.category];
    const any = defaults?.['*'];
    const names = served.featureNames;
    const features = request.features;
    const row = new Float64Array(names.length);
    let missing: string[] | undefined;
    for (let j = 0; j < names.length; j++) {
      const name = names[j] as string;
      const given = features[name];
      // typeof, not `in`: a feature named like an Object.prototype member ("constructor") is not found by accident
      const value = typeof given === 'number' ? given : (numberAt(own, name) ?? numberAt(any, name));
      if (value === undefined) (missing ??= []).push(name);
      else row[j] = value;
    }
    if (!missing) return row;
    const shown = missing.slice(0, 10).join(', ') + (missing.length > 10 ? `, ... (${missing.length} in all)` : '');
    return `model ${served.category}/${served.version} needs features the request lacks and that have no configured default: ${shown}`;
  }

  private reject(reasonCode: string, reason: string, request: Request): Outcome {
    this.ctx.metrics.count(`rejected-${reasonCode}`);
    return { kind: 'dead-letter', request: { reasonCode, reason, redactedPayload: Buffer.from(JSON.stringify(request), 'utf8') } };
  }

  private servingList(): string {
    const serving = this.options.models.serving().map((s) => s.category);
    return serving.length === 0 ? ' (no model is published yet)' : ` (models exist for: ${serving.join(', ')})`;
  }

  private report(events: ModelEvent[]): void {
    for (const event of events) {
      if (event.kind === 'loaded') {
        this.ctx.metrics.count('model-loaded');
        if (event.signedBy === null) this.ctx.logger.warn(event, 'serving an UNSIGNED model version (models.trust.allowUnsigned): anyone who can write the models topic could have published it');
        else this.ctx.logger.info(event, event.replaced === null ? 'model loaded' : 'model swapped');
      } else if (event.kind === 'ledger-unreadable') {
        this.ctx.metrics.count('ledger-unreadable');
        this.ctx.logger.error(event, 'reading the model ledger failed; serving the models already loaded, retrying at the next batch');
      } else {
        this.ctx.metrics.count('model-refused');
        this.ctx.metrics.count(`model-refused-${event.code}`);
        this.ctx.logger.error(event, 'model version refused; the previous version keeps serving');
      }
    }
  }
}

function numberAt(map: Readonly<Record<string, number>> | undefined, key: string): number | undefined {
  const value = map?.[key];
  return typeof value === 'number' ? value : undefined;
}
