import type { ModelRegistry, ServedModel } from '../../models/model-registry.js';
import type { Prediction as ModelOutput } from '../../models/onnx-runtime.js';

/** The queue of a category is full: the caller should retry later (503 + Retry-After). */
export class QueueFullError extends Error {
  constructor(
    readonly category: string,
    readonly queuedRows: number,
  ) {
    super(`the gateway's queue for ${category} is full (${queuedRows} rows waiting, gateway.maxQueueRows); retry later`);
  }
}

export interface BatchJob<T> {
  served: ServedModel;
  rows: Float64Array[];
  /** Turns the model's outputs for this job's rows into what gets written and answered. */
  complete(outputs: ModelOutput[]): T;
}

interface Pending<T> {
  job: BatchJob<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

export interface BatcherOptions<T> {
  models: ModelRegistry;
  /** Rows of one onnxruntime run. */
  maxBatchRows: number;
  /** Rows waiting per category beyond which calls are refused (bounded memory). */
  maxQueueRows: number;
  /** Writes the results of one run durably (one append per run); the calls are answered after it. */
  commit(results: T[]): Promise<void>;
  /** Rows per run, for the metrics. */
  observeBatch?(rows: number): void;
}

/**
 * Micro-batching: calls of a category that arrive while a run of that category is going on wait and
 * go together into the next run: one `predictBatch` per model in it (normally one) and one durable
 * append of all its results. Idle, a call runs at the next turn of the event loop (no timer); under load the
 * batches grow by themselves up to `maxBatchRows`. A queue over `maxQueueRows` refuses calls.
 */
export class MicroBatcher<T> {
  private readonly queues = new Map<string, { pending: Array<Pending<T>>; rows: number; running: boolean }>();

  constructor(private readonly options: BatcherOptions<T>) {}

  submit(job: BatchJob<T>): Promise<T> {
    const category = job.served.category;
    let queue = this.queues.get(category);
    if (!queue) {
      queue = { pending: [], rows: 0, running: false };
      this.queues.set(category, queue);
    }
    if (queue.rows > 0 && queue.rows + job.rows.length > this.options.maxQueueRows) throw new QueueFullError(category, queue.rows);
    // The job's model stays open until its run is over, even when a newer version replaces it meanwhile.
    this.options.models.hold(job.served);
    const done = new Promise<T>((resolve, reject) => queue.pending.push({ job, resolve, reject }));
    queue.rows += job.rows.length;
    if (!queue.running) {
      // Start on the next turn of the event loop: calls whose bodies arrived in the same I/O phase join this run.
      queue.running = true;
      const q = queue;
      setImmediate(() => void this.drain(q));
    }
    return done;
  }

  /** Rows waiting (not yet in a run), by category. */
  queued(): Map<string, number> {
    return new Map([...this.queues].map(([c, q]) => [c, q.rows]));
  }

  private async drain(queue: { pending: Array<Pending<T>>; rows: number; running: boolean }): Promise<void> {
    try {
      while (queue.pending.length > 0) {
        const batch: Array<Pending<T>> = [];
        let rows = 0;
        while (queue.pending.length > 0 && (batch.length === 0 || rows + (queue.pending[0] as Pending<T>).job.rows.length <= this.options.maxBatchRows)) {
          const next = queue.pending.shift() as Pending<T>;
          batch.push(next);
          rows += next.job.rows.length;
        }
        queue.rows -= rows;
        await this.run(batch, rows);
      }
    } finally {
      queue.running = false;
    }
  }

  private async run(batch: Array<Pending<T>>, rows: number): Promise<void> {
    this.options.observeBatch?.(rows);
    const results: Array<{ pending: Pending<T>; value: T }> = [];
    const failed: Array<{ pending: Pending<T>; err: unknown }> = [];
    try {
      const byModel = new Map<ServedModel, Array<Pending<T>>>();
      for (const p of batch) byModel.set(p.job.served, [...(byModel.get(p.job.served) ?? []), p]);
      for (const [served, group] of byModel) {
        try {
          const outputs = await served.model.predictBatch(group.flatMap((p) => p.job.rows));
          let at = 0;
          for (const p of group) {
            const mine = outputs.slice(at, at + p.job.rows.length);
            at += p.job.rows.length;
            try {
              results.push({ pending: p, value: p.job.complete(mine) });
            } catch (err) {
              failed.push({ pending: p, err });
            }
          }
        } catch (err) {
          for (const p of group) failed.push({ pending: p, err });
        }
      }
      if (results.length > 0) {
        try {
          await this.options.commit(results.map((r) => r.value));
        } catch (err) {
          for (const r of results.splice(0)) failed.push({ pending: r.pending, err });
        }
      }
    } finally {
      for (const p of batch) await this.options.models.release(p.job.served);
    }
    for (const r of results) r.pending.resolve(r.value);
    for (const f of failed) f.pending.reject(f.err);
  }
}
