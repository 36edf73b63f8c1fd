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

export function heldPredictionCodec(): Codec<HeldPrediction> {
  held ??= avroCodec<HeldPrediction>(
    avro.Type.forSchema({
      type: 'record',
      name: 'HeldPrediction',
      namespace: 'io.sampleloop.state',
      fields: [
        { name: 'prediction', type: schemaOf('Prediction') as unknown as avro.Schema },
        { name: 'matched', type: 'boolean' },
        { name: 'revision', type: 'int' },
        { name: 'appliedFeedbackTimestamp', type: 'long' },
        { name: 'closeTime', type: 'long' },
      ],
    }),
  );
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

export const markerCodec: Codec<true> = {
  encode: () => Buffer.alloc(0),
  decode: () => true,
};

export const numberCodec: Codec<number> = {
  encode: (v) => {
    const b = Buffer.allocUnsafe(8);
    b.writeDoubleBE(v, 0);
    return b;
  },
  decode: (b) => b.readDoubleBE(0),
};
