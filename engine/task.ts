import type { CommittableStore, StoreChange } from './state/kv-store.js';
import type { WriteOp } from './state/rocks.js';
import { errorMessage, TopologyError } from './errors.js';
import type { Logger } from './logger.js';
import type { EngineMetrics } from './metrics.js';
import { deadLetterLogFor } from './dead-letter-log.js';
import { isBatchProcessor, type AnyProcessor, type BatchProcessor, type DeadLetterRequest, type ProcessorContext, type RecordContext } from './processor.js';
import type { OutputRecord, SourceRecord, StreamRecord } from './record.js';
import type { StoreSpec, Topology, TopologyNode } from './topology.js';
import type { Extraction } from './timestamp-extractor.js';

/**
 * Everything a dead-letter record carries; the application's `encodeDeadLetter` gives it a wire
 * format (sampleloop: the DeadLetter Avro schema).
 */
export interface DeadLetterEnvelope {
  reasonCode: string;
  reason: string;
  sourceTopic: string;
  sourcePartition: number;
  sourceOffset: number;
  sourceTimestamp: number;
  key: Buffer | null;
  payload: Buffer;
  payloadRedacted: boolean;
  stage: string;
  failedAt: number;
}

export interface TaskServices {
  applicationId: string;
  logger: Logger;
  metrics: EngineMetrics;
  deadLetterTopic: string;
  createStore(spec: StoreSpec, taskId: string): CommittableStore<unknown>;
  encodeDeadLetter(envelope: DeadLetterEnvelope): Buffer;
  /** Raw input bytes as a dead letter may carry them (see PrivacyPolicy.protectRaw); null: the original may stay in clear. */
  protectPayload?(bytes: Buffer): { payload: Buffer; encoding: 'sealed' | 'withheld' } | null;
  /** Wall clock, injectable for tests. */
  now(): number;
}

export interface OutputUnit {
  taskId: string;
  outputs: OutputRecord[];
  /** Next offset to read per source partition. */
  offsets: Array<{ topic: string; partition: number; offset: number }>;
}

export interface StateUnit {
  ops: WriteOp[];
  changes: StoreChange[];
}

export type CommitUnit = OutputUnit & StateUnit;

interface Punctuation {
  intervalMs: number;
  next: number;
  fn: (now: number) => void;
  node: string;
}

type Dispatch = (record: StreamRecord<unknown>, from: string) => void;

/** One partition of one topology: its processor instances, its stores, its pending outputs and offsets. */
export class StreamTask {
  readonly id: string;
  private readonly stores = new Map<string, CommittableStore<unknown>>();
  private readonly instances = new Map<string, AnyProcessor<unknown, unknown>>();
  private prefetchers: Array<{ prefetch?(keys: readonly string[]): void }> = [];
  private restored = false;
  /** Records waiting at batch processors, with the source record each came from. */
  private readonly pendingBatches = new Map<string, Array<{ record: StreamRecord<unknown>; context: RecordContext | undefined }>>();
  private readonly dispatchers = new Map<string, Map<string, Dispatch[]>>();
  private readonly punctuations: Punctuation[] = [];
  private outputs: OutputRecord[] = [];
  private readonly offsets = new Set<{ topic: string; partition: number; offset: number }>();
  private current: RecordContext | undefined;
  private currentStage = '';
  private readonly inCounters = new Map<string, { inc(): void }>();
  private readonly sources = new Map<string, { name: string; extracts: boolean; position: Map<number, { topic: string; partition: number; offset: number }> }>();

  constructor(
    readonly topology: Topology,
    readonly partition: number,
    private readonly services: TaskServices,
  ) {
    this.id = `${topology.name}_${partition}`;
  }

  /** Creates the task's stores (before `init`, so a driver can restore them from changelogs first). */
  openStores(): void {
    if (this.stores.size > 0) return;
    for (const spec of this.topology.stores.values()) this.stores.set(spec.name, this.services.createStore(spec, this.id));
  }

  /** Records that changelog records were applied to the stores (before `init`; see ProcessorContext.stateRestored). */
  markRestored(): void {
    this.restored = true;
  }

  storeNames(): string[] {
    return [...this.topology.stores.keys()];
  }

  init(): void {
    this.openStores();
    for (const node of this.topology.nodes.values()) {
      if (node.kind === 'processor') this.instances.set(node.name, node.supplier());
    }
    for (const node of this.topology.nodes.values()) this.dispatchers.set(node.name, this.buildDispatch(node));
    for (const node of this.topology.nodes.values()) {
      if (node.kind === 'processor') this.instances.get(node.name)?.init?.(this.contextFor(node.name, node.stores));
    }
    this.prefetchers = [...this.instances.values()].filter((p) => !isBatchProcessor(p) && typeof p.prefetch === 'function') as typeof this.prefetchers;
  }

  /**
   * Processes one source record; a processor failure sends the record to the dead-letter topic. When
   * its source has a timestamp extractor, `extraction` is what it made of the record (the input
   * extracted it to order it); it is extracted here when not given. An invalid record goes to the
   * dead-letter topic without reaching any processor.
   */
  process(record: SourceRecord, extraction?: Extraction): void {
    let source = this.sources.get(record.topic);
    if (!source) {
      const node = this.topology.sourceFor(record.topic);
      if (!node) throw new TopologyError(`topology "${this.topology.name}" has no source for topic "${record.topic}"`);
      source = { name: node.name, position: new Map(), extracts: node.timestampExtractor !== undefined };
      this.sources.set(record.topic, source);
    }
    let position = source.position.get(record.partition);
    if (!position) {
      position = { topic: record.topic, partition: record.partition, offset: 0 };
      source.position.set(record.partition, position);
    }
    position.offset = record.offset + 1;
    this.offsets.add(position);
    this.countIn(record.topic);
    this.current = record;
    try {
      if (source.extracts) {
        const extracted = extraction ?? this.topology.extract(record);
        if (extracted === undefined || !extracted.valid) {
          const invalid: { deadLetter: DeadLetterRequest; stage?: string } = extracted ?? { deadLetter: { reasonCode: 'processing-error', reason: 'the timestamp extractor returned nothing' } };
          this.currentStage = invalid.stage ?? source.name;
          this.sendDeadLetter(invalid.deadLetter, this.currentStage);
          return;
        }
        this.emit(source.name, '', { key: record.key === null ? null : record.key.toString('utf8'), value: extracted.value, timestamp: extracted.timestamp, headers: record.headers });
      } else {
        this.emit(source.name, '', { key: record.key === null ? null : record.key.toString('utf8'), value: record.value, timestamp: record.timestamp, headers: record.headers });
      }
    } catch (err) {
      this.services.logger.error({ err, task: this.id, topic: record.topic, partition: record.partition, offset: record.offset, stage: this.currentStage }, 'processing failed; record sent to the dead-letter topic');
      this.sendDeadLetter({ reasonCode: 'processing-error', reason: `processor "${this.currentStage}" failed: ${errorMessage(err)}` }, this.currentStage);
    } finally {
      this.current = undefined;
    }
  }

  /** Lets processors read the state for a batch of upcoming source records in bulk (see `Processor.prefetch`). */
  prefetch(records: readonly SourceRecord[]): void {
    if (this.prefetchers.length === 0 || records.length < 2) return;
    const keys: string[] = [];
    for (const r of records) if (r.key !== null) keys.push(r.key.toString('utf8'));
    for (const p of this.prefetchers) p.prefetch?.(keys);
  }

  /** Runs the wall-clock punctuations that are due. */
  punctuate(now: number): void {
    for (const p of this.punctuations) {
      if (now < p.next) continue;
      p.next = now + p.intervalMs;
      this.currentStage = p.node;
      try {
        p.fn(now);
      } catch (err) {
        this.services.logger.error({ err, task: this.id, processor: p.node }, 'punctuation failed');
      }
    }
  }

  /** Tells every processor that a bounded input is exhausted. */
  endOfInput(): void {
    for (const [name, instance] of this.instances) {
      this.currentStage = name;
      if (!isBatchProcessor(instance)) instance.endOfInput?.();
    }
  }

  hasPendingBatches(): boolean {
    for (const list of this.pendingBatches.values()) if (list.length > 0) return true;
    return false;
  }

  /** Runs every batch processor over the records that reached it, then forwards the outcomes downstream. */
  async flushBatches(): Promise<void> {
    while (this.hasPendingBatches()) {
      for (const [name, list] of this.pendingBatches) {
        if (list.length === 0) continue;
        this.pendingBatches.set(name, []);
        const instance = this.instances.get(name) as BatchProcessor<unknown, unknown>;
        let outcomes: Array<Array<import('./processor.js').BatchOutcome<unknown>>>;
        try {
          outcomes = await instance.processBatch(list.map((e) => e.record));
        } catch (err) {
          this.services.logger.error({ err, task: this.id, processor: name, records: list.length }, 'batch processor failed; its records go to the dead-letter topic');
          outcomes = list.map(() => [{ kind: 'dead-letter', request: { reasonCode: 'processing-error', reason: `processor "${name}" failed: ${errorMessage(err)}` } }]);
        }
        list.forEach((entry, i) => {
          this.current = entry.context;
          try {
            for (const outcome of outcomes[i] ?? []) {
              if (outcome.kind === 'forward') this.emit(name, outcome.output ?? '', outcome.record);
              else this.sendDeadLetter(outcome.request, name);
            }
          } catch (err) {
            this.services.logger.error({ err, task: this.id, stage: this.currentStage }, 'processing failed; record sent to the dead-letter topic');
            this.sendDeadLetter({ reasonCode: 'processing-error', reason: `processor "${this.currentStage}" failed: ${errorMessage(err)}` }, this.currentStage);
          } finally {
            this.current = undefined;
          }
        });
      }
    }
  }

  pendingOutputs(): number {
    return this.outputs.length;
  }

  pendingStateWrites(): number {
    let n = 0;
    for (const s of this.stores.values()) n += s.pendingWrites();
    return n;
  }

  /** Hands over everything produced since the last commit. */
  drain(withChanges = true): CommitUnit {
    return { ...this.drainOutputs(), ...this.drainStores(withChanges) };
  }

  /** Hands over the outputs and input offsets produced since the last drain; the stores keep their uncommitted writes. */
  drainOutputs(): OutputUnit {
    const unit: OutputUnit = { taskId: this.id, outputs: this.outputs, offsets: [...this.offsets].map((o) => ({ ...o })) };
    this.outputs = [];
    this.offsets.clear();
    return unit;
  }

  /** Hands over the stores' uncommitted writes, as write ops and (`withChanges`) changelog entries. */
  drainStores(withChanges = true): StateUnit {
    const ops: WriteOp[] = [];
    const changes: StoreChange[] = [];
    for (const store of this.stores.values()) {
      const d = store.drain(withChanges);
      for (const op of d.ops) ops.push(op);
      for (const c of d.changes) changes.push(c);
    }
    return { ops, changes };
  }

  store(name: string): CommittableStore<unknown> | undefined {
    return this.stores.get(name);
  }

  close(): void {
    for (const instance of this.instances.values()) instance.close?.();
  }

  private countIn(topic: string): void {
    let c = this.inCounters.get(topic);
    if (!c) {
      c = this.services.metrics.recordsIn.labels(this.topology.name, topic);
      this.inCounters.set(topic, c);
    }
    c.inc();
  }

  private emit(from: string, output: string, record: StreamRecord<unknown>): void {
    const targets = this.dispatchers.get(from)?.get(output);
    if (!targets) return;
    for (const target of targets) target(record, from);
  }

  private buildDispatch(node: TopologyNode): Map<string, Dispatch[]> {
    const byOutput = new Map<string, Dispatch[]>();
    for (const link of node.children) {
      const child = this.topology.nodes.get(link.child);
      if (!child) throw new TopologyError(`node "${node.name}" links to unknown node "${link.child}"`);
      const list = byOutput.get(link.output) ?? [];
      list.push(this.dispatchTo(child));
      byOutput.set(link.output, list);
    }
    return byOutput;
  }

  private dispatchTo(node: TopologyNode): Dispatch {
    if (node.kind === 'sink') {
      const outCounter = this.services.metrics.recordsOut.labels(node.topic);
      return (record) => {
        const s = node.serialize(record);
        this.outputs.push({ topic: node.topic, key: s.key, value: s.value, timestamp: record.timestamp, headers: s.headers ?? {} });
        outCounter.inc();
      };
    }
    if (node.kind === 'processor') {
      const name = node.name;
      const instance = this.instances.get(name) as AnyProcessor<unknown, unknown>;
      if (isBatchProcessor(instance)) {
        const pending: Array<{ record: StreamRecord<unknown>; context: RecordContext | undefined }> = [];
        this.pendingBatches.set(name, pending);
        return (record) => {
          (this.pendingBatches.get(name) as typeof pending).push({ record, context: this.current });
        };
      }
      return (record, from) => {
        const previous = this.currentStage;
        this.currentStage = name;
        instance.process(record, from);
        this.currentStage = previous;
      };
    }
    throw new TopologyError(`source "${node.name}" cannot be a child`);
  }

  private contextFor(nodeName: string, storeNames: string[]): ProcessorContext<unknown> {
    const allowed = new Set(storeNames);
    const metrics = this.services.metrics.forProcessor(this.topology.name, nodeName);
    const logger = this.services.logger.child({ task: this.id, processor: nodeName });
    return {
      applicationId: this.services.applicationId,
      taskId: this.id,
      partition: this.partition,
      logger,
      metrics,
      forward: (record, output = '') => this.emit(nodeName, output, record),
      deadLetter: (request) => this.sendDeadLetter(request, nodeName),
      store: <V>(name: string) => {
        const store = this.stores.get(name);
        if (!store || !allowed.has(name)) throw new TopologyError(`processor "${nodeName}" did not declare store "${name}"`);
        return store as unknown as CommittableStore<V>;
      },
      recordContext: () => this.current,
      stateRestored: () => this.restored,
      schedule: (intervalMs, fn) => {
        this.punctuations.push({ intervalMs, next: this.services.now() + intervalMs, fn, node: nodeName });
      },
    };
  }

  private sendDeadLetter(request: DeadLetterRequest, stage: string): void {
    const source = this.current;
    if (!source) {
      this.services.logger.error({ task: this.id, stage, reasonCode: request.reasonCode }, 'dead letter requested outside record processing; nothing to send');
      return;
    }
    const now = this.services.now();
    let payload = request.redactedPayload;
    let encoding = request.redactedPayload === undefined ? 'original' : (request.payloadEncoding ?? 'redacted');
    if (payload === undefined && source.value !== null && this.services.protectPayload) {
      // A processor failed on a raw input record: its bytes may hold sensitive values in clear.
      const protectedPayload = this.services.protectPayload(source.value);
      if (protectedPayload) {
        payload = protectedPayload.payload;
        encoding = protectedPayload.encoding;
      }
    }
    const envelope: DeadLetterEnvelope = {
      reasonCode: request.reasonCode,
      reason: request.reason,
      sourceTopic: source.topic,
      sourcePartition: source.partition,
      sourceOffset: source.offset,
      // A log timestamp that is no Avro long (fractional, unsafe) must not make the dead letter itself fail.
      sourceTimestamp: Number.isSafeInteger(source.timestamp) ? source.timestamp : Math.min(Number.MAX_SAFE_INTEGER, Math.max(0, Math.trunc(source.timestamp) || 0)),
      key: source.key,
      payload: payload ?? source.value ?? Buffer.alloc(0),
      payloadRedacted: payload !== undefined,
      stage,
      failedAt: now,
    };
    this.outputs.push({
      topic: this.services.deadLetterTopic,
      key: source.key,
      value: this.services.encodeDeadLetter(envelope),
      timestamp: now,
      headers: {
        'sampleloop.dlq.reason.code': request.reasonCode,
        'sampleloop.dlq.reason': request.reason,
        'sampleloop.dlq.source.topic': source.topic,
        'sampleloop.dlq.source.partition': String(source.partition),
        'sampleloop.dlq.source.offset': String(source.offset),
        'sampleloop.dlq.stage': stage,
        'sampleloop.dlq.payload.redacted': String(envelope.payloadRedacted),
        'sampleloop.dlq.payload.encoding': encoding,
      },
    });
    deadLetterLogFor(this.services.logger).record({
      reasonCode: request.reasonCode,
      reason: request.reason,
      topic: source.topic,
      partition: source.partition,
      offset: source.offset,
      stage,
      task: this.id,
    });
    this.services.metrics.deadLetters.labels(this.topology.name, request.reasonCode).inc();
    this.services.metrics.recordsOut.labels(this.services.deadLetterTopic).inc();
    this.services.metrics.deadLetterWritten({
      topology: this.topology.name,
      reasonCode: request.reasonCode,
      stage,
      sourceTopic: source.topic,
      sourcePartition: source.partition,
      sourceOffset: source.offset,
      at: now,
    });
  }
}
