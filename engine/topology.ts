import type { Codec } from './state/kv-store.js';
import { errorMessage, TopologyError } from './errors.js';
import type { Processor, ProcessorSupplier } from './processor.js';
import type { Headers, SourceRecord, StreamRecord } from './record.js';
import type { Extraction, TimestampExtractor } from './timestamp-extractor.js';

export interface StoreSpec<V = unknown> {
  name: string;
  codec: Codec<V>;
  /** Back the store with a compacted changelog topic when running on Kafka (default true). */
  changelog?: boolean;
  readCacheEntries?: number;
  /** The processor scans this store with `range`: keep uncommitted keys sorted. */
  rangeScans?: boolean;
}

export type Serializer<V> = (record: StreamRecord<V>) => { key: Buffer | null; value: Buffer | null; headers?: Headers };

export interface TopicRequirement {
  /** `cleanup.policy=compact` (latest record per key). */
  compact: boolean;
}

export interface ChildLink {
  output: string;
  child: string;
}

export interface SourceNode {
  kind: 'source';
  name: string;
  topics: string[];
  children: ChildLink[];
  /** Reads each record's event time (and decodes its value once); without it the log timestamp orders records. */
  timestampExtractor?: TimestampExtractor;
}

export interface SourceOptions {
  timestampExtractor?: TimestampExtractor;
}

export interface ProcessorNode {
  kind: 'processor';
  name: string;
  supplier: ProcessorSupplier<unknown, unknown>;
  parents: string[];
  stores: string[];
  children: ChildLink[];
}

export interface SinkNode {
  kind: 'sink';
  name: string;
  topic: string;
  serialize: Serializer<unknown>;
  parents: string[];
  children: ChildLink[];
}

export type TopologyNode = SourceNode | ProcessorNode | SinkNode;

/** A compiled topology: a DAG of sources, processors over named stores, and sinks. */
export class Topology {
  readonly nodes = new Map<string, TopologyNode>();
  readonly stores = new Map<string, StoreSpec>();
  readonly sinkTopics = new Map<string, TopicRequirement>();
  private readonly sourceByTopic = new Map<string, SourceNode>();

  constructor(readonly name: string) {
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new TopologyError(`topology name "${name}" may only use letters, digits, '.', '_' and '-'`);
  }

  addSource(name: string, topics: string[], options: SourceOptions = {}): this {
    this.addNode({ kind: 'source', name, topics, children: [], ...(options.timestampExtractor ? { timestampExtractor: options.timestampExtractor } : {}) });
    for (const topic of topics) this.sourceByTopic.set(topic, this.nodes.get(name) as SourceNode);
    return this;
  }

  /**
   * What the timestamp extractor of `record`'s source makes of it; undefined when that source has
   * none. An extractor that throws made the record invalid (`processing-error`).
   */
  extract(record: SourceRecord): Extraction | undefined {
    const source = this.sourceByTopic.get(record.topic);
    const extractor = source?.timestampExtractor;
    if (!extractor) return undefined;
    try {
      return extractor.extract(record);
    } catch (err) {
      return { valid: false, deadLetter: { reasonCode: 'processing-error', reason: `the timestamp extractor of "${source.name}" failed: ${errorMessage(err)}` } };
    }
  }

  addProcessor<In, Out>(name: string, supplier: ProcessorSupplier<In, Out>, parents: ReadonlyArray<ParentLink>, stores: string[] = []): this {
    this.addNode({
      kind: 'processor',
      name,
      supplier: supplier as ProcessorSupplier<unknown, unknown>,
      parents: parents.map((p) => p.node),
      stores,
      children: [],
    });
    this.link(name, parents);
    return this;
  }

  addSink<V>(name: string, topic: string, serialize: Serializer<V>, parents: ReadonlyArray<ParentLink>, requirement: TopicRequirement = { compact: false }): this {
    this.addNode({ kind: 'sink', name, topic, serialize: serialize as Serializer<unknown>, parents: parents.map((p) => p.node), children: [] });
    this.link(name, parents);
    const previous = this.sinkTopics.get(topic);
    this.sinkTopics.set(topic, { compact: requirement.compact || (previous?.compact ?? false) });
    return this;
  }

  addStore(spec: StoreSpec): this {
    if (this.stores.has(spec.name)) throw new TopologyError(`store "${spec.name}" is defined twice in topology "${this.name}"`);
    this.stores.set(spec.name, spec as StoreSpec);
    return this;
  }

  sourceTopics(): string[] {
    const topics: string[] = [];
    for (const node of this.nodes.values()) if (node.kind === 'source') topics.push(...node.topics);
    return topics;
  }

  /** Source node reading `topic`. */
  sourceFor(topic: string): SourceNode | undefined {
    return this.sourceByTopic.get(topic);
  }

  /** Checks that every store a processor names exists and that the graph has no cycle. */
  validate(): void {
    for (const node of this.nodes.values()) {
      if (node.kind === 'processor') {
        for (const store of node.stores) {
          if (!this.stores.has(store)) throw new TopologyError(`processor "${node.name}" uses store "${store}", which topology "${this.name}" does not define`);
        }
      }
    }
    const seen = new Set<string>();
    const visiting = new Set<string>();
    const visit = (name: string): void => {
      if (visiting.has(name)) throw new TopologyError(`topology "${this.name}" has a cycle through "${name}"`);
      if (seen.has(name)) return;
      visiting.add(name);
      for (const c of this.nodes.get(name)?.children ?? []) visit(c.child);
      visiting.delete(name);
      seen.add(name);
    };
    for (const name of this.nodes.keys()) visit(name);
  }

  private addNode(node: TopologyNode): void {
    if (this.nodes.has(node.name)) throw new TopologyError(`node "${node.name}" is defined twice in topology "${this.name}"`);
    this.nodes.set(node.name, node);
  }

  private link(child: string, parents: ReadonlyArray<ParentLink>): void {
    for (const parent of parents) {
      const node = this.nodes.get(parent.node);
      if (!node) throw new TopologyError(`node "${child}" names parent "${parent.node}", which does not exist`);
      if (node.kind === 'sink') throw new TopologyError(`sink "${parent.node}" cannot have children`);
      node.children.push({ output: parent.output, child });
    }
  }
}

export interface ParentLink {
  node: string;
  output: string;
}

/** What a join DSL node compiles to: one processor reading both sides over named stores. */
export interface JoinSpec<Out> {
  stores: StoreSpec[];
  supplier: (sides: { left: string; right: string }) => Processor<unknown, Out>;
}

/** Kafka-Streams-style DSL over `Topology`. */
export class StreamsBuilder {
  private readonly topology: Topology;

  constructor(name: string) {
    this.topology = new Topology(name);
  }

  stream(topics: string | string[], name?: string): KStream<Buffer | null>;
  /** A stream whose records are what `timestampExtractor` extracted from them (decoded once, ordered by their event time). */
  stream<V>(topics: string | string[], name: string, options: SourceOptions & { timestampExtractor: TimestampExtractor }): KStream<V>;
  stream(topics: string | string[], name?: string, options: SourceOptions = {}): KStream<unknown> {
    const list = Array.isArray(topics) ? topics : [topics];
    const nodeName = name ?? `source-${list.join('+')}`;
    this.topology.addSource(nodeName, list, options);
    return new KStream(this.topology, [{ node: nodeName, output: '' }]);
  }

  build(): Topology {
    this.topology.validate();
    return this.topology;
  }
}

export class KStream<V> {
  constructor(
    protected readonly topology: Topology,
    protected readonly parents: ReadonlyArray<ParentLink>,
  ) {}

  process<Out>(name: string, supplier: ProcessorSupplier<V, Out>, stores: StoreSpec[] = []): ProcessedStream<Out> {
    for (const store of stores) this.topology.addStore(store);
    this.topology.addProcessor(name, supplier, this.parents, stores.map((s) => s.name));
    return new ProcessedStream<Out>(this.topology, name);
  }

  filter(name: string, predicate: (record: StreamRecord<V>) => boolean): KStream<V> {
    return this.process<V>(name, () => {
      let ctx: { forward(r: StreamRecord<V>): void } | undefined;
      return {
        init(c) {
          ctx = c;
        },
        process(record) {
          if (predicate(record)) ctx?.forward(record);
        },
      };
    });
  }

  /** Routes each record to the first branch whose predicate holds; records matching none go to `otherwise` when given. */
  split<B extends string>(name: string, branches: Record<B, (record: StreamRecord<V>) => boolean>): Record<B, KStream<V>> {
    const entries = Object.entries(branches) as Array<[B, (record: StreamRecord<V>) => boolean]>;
    const node = this.process<V>(name, () => {
      let ctx: { forward(r: StreamRecord<V>, output?: string): void } | undefined;
      return {
        init(c) {
          ctx = c;
        },
        process(record) {
          for (const [branch, predicate] of entries) {
            if (predicate(record)) {
              ctx?.forward(record, branch);
              return;
            }
          }
        },
      };
    });
    const out = {} as Record<B, KStream<V>>;
    for (const [branch] of entries) out[branch] = node.output(branch);
    return out;
  }

  merge(other: KStream<V>): KStream<V> {
    return new KStream<V>(this.topology, [...this.parents, ...other.parents]);
  }

  /** A windowed stream-stream join: compiles to one processor over the spec's named stores. */
  join<O, Out>(other: KStream<O>, name: string, spec: JoinSpec<Out>): ProcessedStream<Out> {
    const left = this.singleParent('join');
    const right = other.singleParent('join');
    for (const store of spec.stores) this.topology.addStore(store);
    this.topology.addProcessor(name, () => spec.supplier({ left, right }), [...this.parents, ...other.parents], spec.stores.map((s) => s.name));
    return new ProcessedStream<Out>(this.topology, name);
  }

  to(topic: string, serialize: Serializer<V>, requirement?: TopicRequirement, name?: string): void {
    this.topology.addSink(name ?? `sink-${topic}-${this.topology.nodes.size}`, topic, serialize, this.parents, requirement);
  }

  private singleParent(operation: string): string {
    const first = this.parents[0];
    if (this.parents.length !== 1 || !first) throw new TopologyError(`${operation} needs a stream with exactly one parent node; process() the merged stream first`);
    return first.node;
  }
}

/** The output of a processor; `output(name)` selects one of its named outputs. */
export class ProcessedStream<V> extends KStream<V> {
  constructor(topology: Topology, private readonly node: string) {
    super(topology, [{ node, output: '' }]);
  }

  output<T = V>(name: string): KStream<T> {
    return new KStream<T>(this.topology, [{ node: this.node, output: name }]);
  }
}
