import avro from 'avsc';
import type { Codec } from '../state/kv-store.js';
import { schemaOf } from '../schemas/index.js';
import type { Feedback, Prediction } from '../schemas/types.js';

/** A prediction waiting in the join window. */
export interface HeldPrediction {
  prediction: Prediction;
  matched: boolean;
  /** Revision of the last emitted sample; -1 before the first. */
  revision: number;
  /** Timestamp of the feedback behind the last emitted sample; -1 before the first. */
  appliedFeedbackTimestamp: number;
  closeTime: number;
}

/** Feedback waiting for its prediction, in arrival order. */
export interface BufferedFeedback {
  items: Array<{ feedback: Feedback; closeTime: number }>;
}

function avroCodec<V>(type: avro.Type): Codec<V> {
  return {
    encode: (value) => type.toBuffer(value),
    decode: (bytes) => type.fromBuffer(bytes) as V,
  };
}

let held: Codec<HeldPrediction> | undefined;
let buffered: Codec<BufferedFeedback> | undefined;

/**
 * Held predictions are written once per window and read back on feedback: JSON is several times
 * faster than avsc for their string-keyed feature maps (measured in bench/join.ts), and the values
 * never leave the task's local store and changelog.
 */
export function heldPredictionCodec(): Codec<HeldPrediction> {
  held ??= {
    encode: (value) => Buffer.from(JSON.stringify(value), 'utf8'),
    decode: (bytes) => JSON.parse(bytes.toString('utf8')) as HeldPrediction,
  };
  return held;
}

export function bufferedFeedbackCodec(): Codec<BufferedFeedback> {
  buffered ??= avroCodec<BufferedFeedback>(
    avro.Type.forSchema({
      type: 'record',
      name: 'BufferedFeedback',
      namespace: 'io.sampleloop.state',
      fields: [
        {
          name: 'items',
          type: {
            type: 'array',
            items: {
              type: 'record',
              name: 'BufferedItem',
              fields: [
                { name: 'feedback', type: schemaOf('Feedback') as unknown as avro.Schema },
                { name: 'closeTime', type: 'long' },
              ],
            },
          },
        },
      ],
    }),
  );
  return buffered;
}

/** Expiry index value: whether the held prediction has produced a sample (lets closing skip reading it). */
export const matchedFlagCodec: Codec<number> = {
  encode: (v) => Buffer.from([v]),
  decode: (b) => b[0] ?? 0,
};

export const numberCodec: Codec<number> = {
  encode: (v) => {
    const b = Buffer.allocUnsafe(8);
    b.writeDoubleBE(v, 0);
    return b;
  },
  decode: (b) => b.readDoubleBE(0),
};
