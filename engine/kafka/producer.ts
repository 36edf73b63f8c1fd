import { partitionForKey } from '../partitioner.js';
import type { OutputRecord } from '../record.js';
import { call, flushProducer, KafkaError, Producer, toHeaders, type LibrdkafkaSettings, type ProducerType } from './client.js';
import { EMPTY_VALUE_HEADERS, EMPTY_VALUE_MESSAGE_HEADERS } from './changelog.js';

export interface OutputProducerOptions {
  applicationId: string;
  instanceId: string;
  /** Exactly-once: the producer is transactional (transactional.id = applicationId-instanceId). */
  transactional: boolean;
  librdkafka: LibrdkafkaSettings;
  /** Partitions of an output topic, for keyed records without a partition. */
  partitionCount(topic: string): number | undefined;
}

/** Performance settings; kafka.librdkafka overrides them. */
const PRODUCER_DEFAULTS: LibrdkafkaSettings = {
  // librdkafka leaves Nagle on (the Java clients turn it off): small requests may wait for delayed ACKs.
  'socket.nagle.disable': true,
  // Records are produced in one burst per commit and flushed (or committed) right after.
  'linger.ms': 5,
};

/** librdkafka's "local queue full". */
const QUEUE_FULL = -184;

/**
 * The runtime's one producer of outputs and changelog records: idempotent (transactional under
 * exactly-once), failed deliveries kept until the next `flush`, replaceable after a failed
 * transaction (`reset`).
 */
export class OutputProducer {
  private deliveryErrors: Error[] = [];

  private constructor(
    private readonly options: OutputProducerOptions,
    private current: ProducerType,
  ) {}

  static async connect(options: OutputProducerOptions): Promise<OutputProducer> {
    const out = new OutputProducer(options, undefined as unknown as ProducerType);
    out.current = await out.create();
    return out;
  }

  /** The librdkafka producer (changes on `reset`), for transactions. */
  get client(): ProducerType {
    return this.current;
  }

  private async create(): Promise<ProducerType> {
    const o = this.options;
    const producer = new Producer({
      ...PRODUCER_DEFAULTS,
      ...o.librdkafka,
      'client.id': `${o.applicationId}-${o.instanceId}-producer`,
      'enable.idempotence': true,
      acks: 'all',
      dr_cb: true,
      // Only failures are needed (they fail the commit): a report per delivered record doubles the cost of producing.
      'delivery.report.only.error': true,
      ...(o.transactional ? { 'transactional.id': `${o.applicationId}-${o.instanceId}`, 'transaction.timeout.ms': 60_000 } : {}),
    } as ConstructorParameters<typeof Producer>[0]);
    producer.on('delivery-report', (err) => {
      if (err) this.deliveryErrors.push(new KafkaError('a record could not be delivered', err));
    });
    await call('connecting the producer', (cb) => producer.connect({}, cb as never));
    producer.setPollInterval(10);
    if (o.transactional) {
      // Fences an earlier producer with this transactional id and aborts its open transaction.
      await call('initializing transactions', (cb) => producer.initTransactions(30_000, cb)).catch(async (err: unknown) => {
        await new Promise<void>((resolve) => producer.disconnect(5_000, () => resolve()));
        throw err;
      });
    }
    return producer;
  }

  /** Replaces the producer (after a failed transaction its state is unknown). */
  async reset(): Promise<void> {
    const old = this.current;
    await new Promise<void>((resolve) => old.disconnect(5_000, () => resolve()));
    this.current = await this.create();
  }

  produceAll(outputs: OutputRecord[]): void {
    for (const r of outputs) {
      const partition = r.partition ?? (r.key ? partitionForKey(r.key, this.options.partitionCount(r.topic) ?? 1) : null);
      for (;;) {
        try {
          const headers = r.headers === EMPTY_VALUE_HEADERS ? EMPTY_VALUE_MESSAGE_HEADERS : toHeaders(r.headers);
          this.current.produce(r.topic, partition, r.value, r.key, r.timestamp, undefined, headers);
          break;
        } catch (err) {
          // Local queue full: let librdkafka deliver some records, then retry.
          if ((err as { code?: number }).code !== QUEUE_FULL) throw new KafkaError(`producing to ${r.topic}`, err);
          this.current.poll();
        }
      }
    }
  }

  /** Waits until everything produced is delivered; throws the first failed delivery since the last flush. */
  async flush(): Promise<void> {
    await flushProducer(this.current, 60_000);
    if (this.deliveryErrors.length > 0) {
      const first = this.deliveryErrors[0] as Error;
      this.deliveryErrors = [];
      throw first;
    }
  }

  /** Forgets failed deliveries of work that is dropped anyway (a recovery). */
  clearDeliveryErrors(): void {
    this.deliveryErrors = [];
  }

  disconnect(): Promise<void> {
    return new Promise<void>((resolve) => this.current.disconnect(() => resolve()));
  }
}
