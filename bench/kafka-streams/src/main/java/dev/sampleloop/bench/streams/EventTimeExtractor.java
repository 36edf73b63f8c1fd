package dev.sampleloop.bench.streams;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.streams.processor.TimestampExtractor;

/**
 * Event time from the deserialized value's {@code timestamp} field (Kafka Streams runs the
 * extractor after the value serde, so the JSON is parsed once). Falls back to the partition's
 * time when a value has no usable timestamp.
 */
public final class EventTimeExtractor implements TimestampExtractor {
  @Override
  public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
    if (record.value() instanceof EventTimed timed && timed.eventTime() >= 0) return timed.eventTime();
    return Math.max(partitionTime, 0);
  }
}
