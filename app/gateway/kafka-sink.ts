import { call, flushProducer, KafkaError, Producer, toHeaders, type LibrdkafkaSettings } from '../../engine/kafka/client.js';
import { partitionForKey } from '../../engine/partitioner.js';
import type { OutputRecord } from '../../engine/record.js';
import type { Serializer } from '../../engine/topology.js';
import type { Prediction } from '../../schemas/types.js';
import { feedbackRecords, predictionRecords, type GatewaySink, type GatewayTopics } from './sink.js';

type Delivered = (err: unknown) => void;

/**
 * The gateway's Kafka producer: idempotent, acks=all; a call resolves once the broker acknowledged
 * every record of it (in-sync replicas have it), so the gateway never answers before that. Records are
 * keyed by request ID and partitioned as the Java client does (murmur2), like every other producer.
 */
export async function kafkaSink(settings: LibrdkafkaSettings, topics: GatewayTopics, partitions: ReadonlyMap<string, number>, serialize: Serializer<Prediction>, clientId: string): Promise<GatewaySink> {
  const producer = new Producer({
    ...settings,
    'client.id': clientId,
    'enable.idempotence': true,
    acks: 'all',
    'linger.ms': 1,
    'socket.nagle.disable': true,
    dr_cb: true,
  } as ConstructorParameters<typeof Producer>[0]);
  producer.on('delivery-report', (err, report) => {
    const done = (report as { opaque?: unknown }).opaque;
    if (typeof done === 'function') (done as Delivered)(err ?? null);
  });
  await call('connecting the gateway producer', (cb) => producer.connect({}, cb as never));
  producer.setPollInterval(1);

  const send = (records: OutputRecord[]): Promise<void> =>
    new Promise((resolve, reject) => {
      let pending = records.length;
      let failed: unknown;
      const delivered: Delivered = (err) => {
        if (err && failed === undefined) failed = err;
        if (--pending === 0) {
          if (failed === undefined) resolve();
          else reject(new KafkaError('the broker did not acknowledge a gateway record', failed as never));
        }
      };
      if (pending === 0) resolve();
      try {
        for (const r of records) {
          const count = partitions.get(r.topic) ?? 1;
          producer.produce(r.topic, r.key ? partitionForKey(r.key, count) : null, r.value, r.key, r.timestamp, delivered, toHeaders(r.headers));
        }
      } catch (err) {
        reject(new KafkaError('the gateway producer refused a record', err as never));
      }
    });

  return {
    appendPredictions: (predictions) => send(predictionRecords(topics.predictions, predictions, serialize)),
    appendFeedback: (feedback) => send(feedbackRecords(topics.feedback, feedback)),
    close: async () => {
      await flushProducer(producer, 10_000, 'flushing the gateway producer').catch(() => undefined);
      await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
    },
  };
}
