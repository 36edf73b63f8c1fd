import type { Logger } from 'pino';
import type { KeyValueStore } from './state/kv-store.js';
import type { Headers, StreamRecord } from './record.js';

/** Where the record being processed came from. */
export interface RecordContext {
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
  headers: Headers;
  key: Buffer | null;
  value: Buffer | null;
}

export interface DeadLetterRequest {
  /** Stable machine code, e.g. `undecodable`, `missing-request-id`. */
  reasonCode: string;
  reason: string;
  /** Replaces the original bytes (which may hold sensitive values) when given. */
  redactedPayload?: Buffer;
  /** How `redactedPayload` is encoded: a re-encoding with sensitive fields protected (default), or the original bytes sealed (encrypted). */
  payloadEncoding?: 'redacted' | 'sealed' | 'withheld';
}

/** Counters a processor reports; the runtime turns them into Prometheus metrics. */
export interface ProcessorMetrics {
  count(event: string, by?: number): void;
  observe(histogram: string, value: number): void;
  /**
   * A fact with fields for in-process listeners (`EngineMetrics.listen`, e.g. the dashboard): a
   * sample's category, model version and label source. Not exported to Prometheus (its fields would
   * make unbounded label sets); never put sensitive values in it.
   */
  note(event: string, fields: Readonly<Record<string, string | number | null>>): void;
}

export interface ProcessorContext<Out> {
  readonly applicationId: string;
  readonly taskId: string;
  readonly partition: number;
  readonly logger: Logger;
  readonly metrics: ProcessorMetrics;
  /** Sends a record to the children wired to `output` ('' = the main output). */
  forward(record: StreamRecord<Out>, output?: string): void;
  /** Sends the current source record to the dead-letter topic. */
  deadLetter(request: DeadLetterRequest): void;
  store<V>(name: string): KeyValueStore<V>;
  /** Source of the record being processed; undefined inside a punctuation. */
  recordContext(): RecordContext | undefined;
  /** Calls `punctuator` about every `intervalMs` of wall-clock time with the current wall-clock time. */
  schedule(intervalMs: number, punctuator: (wallClockMs: number) => void): void;
  /**
   * True when changelog records were applied to the task's stores before `init` (Kafka mode): a
   * store declared without a changelog (`changelog: false`) is then out of date and must be
   * rederived from the others.
   */
  stateRestored(): boolean;
}

export interface Processor<In, Out> {
  init?(context: ProcessorContext<Out>): void;
  /** `from` is the name of the parent node the record came from. */
  process(record: StreamRecord<In>, from: string): void;
  /** Called when a bounded input is exhausted: close everything still open. */
  endOfInput?(): void;
  /**
   * A hint before a batch of source records is processed: the keys (request IDs) about to arrive,
   * so keyed state can be read in one bulk lookup instead of one per record. Never required for
   * correctness.
   */
  prefetch?(keys: readonly string[]): void;
  close?(): void;
}

/** What a batch processor does with one input record. */
export type BatchOutcome<Out> =
  | { kind: 'forward'; record: StreamRecord<Out>; output?: string }
  | { kind: 'dead-letter'; request: DeadLetterRequest };

/**
 * A processor whose work is asynchronous and cheaper in bulk (model inference). The task collects
 * the records that reach it while processing a batch of input, awaits `processBatch` once, then
 * applies the outcomes record by record (in input order, each with its own record context).
 */
export interface BatchProcessor<In, Out> {
  readonly kind: 'batch';
  init?(context: ProcessorContext<Out>): void;
  processBatch(records: ReadonlyArray<StreamRecord<In>>): Promise<Array<Array<BatchOutcome<Out>>>>;
  close?(): void | Promise<void>;
}

export type AnyProcessor<In, Out> = Processor<In, Out> | BatchProcessor<In, Out>;

export function isBatchProcessor<In, Out>(p: AnyProcessor<In, Out>): p is BatchProcessor<In, Out> {
  return (p as BatchProcessor<In, Out>).kind === 'batch';
}

export type ProcessorSupplier<In, Out> = () => AnyProcessor<In, Out>;
