import type { EmbeddedLog } from '../../engine/embedded/log.js';
import type { OutputRecord } from '../../engine/record.js';
import type { Serializer } from '../../engine/topology.js';
import type { Feedback, Prediction } from '../../schemas/types.js';

/**
 * Where the gateway writes: predictions (Avro, as the predictor topology writes them) and feedback
 * (JSON, as producers write the feedback topic). `append*` resolves only once the records are durable
 * (the embedded log's write-ahead log; acks=all on Kafka): the gateway answers after that, never before.
 */
export interface GatewaySink {
  appendPredictions(predictions: readonly Prediction[]): Promise<void>;
  appendFeedback(feedback: readonly Feedback[]): Promise<void>;
  close(): Promise<void>;
}

export interface GatewayTopics {
  predictions: string;
  feedback: string;
}

export function predictionRecords(topic: string, predictions: readonly Prediction[], serialize: Serializer<Prediction>): OutputRecord[] {
  return predictions.map((p) => {
    const { key, value } = serialize({ key: p.requestId, value: p, timestamp: p.timestamp, headers: {} });
    return { topic, key, value, timestamp: p.timestamp, headers: {} };
  });
}

export function feedbackRecords(topic: string, feedback: readonly Feedback[]): OutputRecord[] {
  return feedback.map((f) => ({ topic, key: Buffer.from(f.requestId, 'utf8'), value: Buffer.from(JSON.stringify(f), 'utf8'), timestamp: f.timestamp, headers: {} }));
}

/**
 * The embedded log: one atomic RocksDB write per call (a micro-batch's predictions together). The
 * write is in the write-ahead log when it returns, so it survives a kill -9 of the process; with
 * `embedded.syncWrites` it is fsynced too (and survives a power loss).
 */
export function embeddedSink(log: EmbeddedLog, topics: GatewayTopics, serialize: Serializer<Prediction>): GatewaySink {
  return {
    appendPredictions: (predictions) => {
      log.append(predictionRecords(topics.predictions, predictions, serialize));
      return Promise.resolve();
    },
    appendFeedback: (feedback) => {
      log.append(feedbackRecords(topics.feedback, feedback));
      return Promise.resolve();
    },
    close: () => Promise.resolve(),
  };
}
