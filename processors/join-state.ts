import avro from 'avsc';
import type { Codec } from '../engine/state/kv-store.js';
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
  /** The prediction's encoding, kept by the codec: the status changes, the prediction never does. */
  encodedPrediction?: Buffer;
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

let buffered: Codec<BufferedFeedback> | undefined;

const HELD_FORMAT_JSON_BODY = 1;
const HELD_FORMAT = 2;
const HELD_HEADER_BYTES = 22;
const JSON_OBJECT_START = 0x7b;

/**
 * Held predictions: a fixed header (format, matched, revision, applied feedback time, close time)
 * then the prediction, encoded once per prediction however often its status changes. The body is
 * the prediction without features as JSON, then the feature names (JSON, shared by most records
 * of a category) and the values as float64: formatting 30+ doubles as text was the largest cost
 * of holding a prediction (bench/join.ts), and binary doubles round-trip exactly. The values never
 * leave the task's local store and changelog. Older formats (a JSON body, or a bare JSON object)
 * still decode.
 */
export const heldPredictionCodec = (): Codec<HeldPrediction> => HELD_CODEC;

const HELD_CODEC: Codec<HeldPrediction> = {
  encode(value) {
    const body = (value.encodedPrediction ??= encodeBody(value.prediction));
    const out = Buffer.allocUnsafe(HELD_HEADER_BYTES + body.length);
    out[0] = HELD_FORMAT;
    out[1] = value.matched ? 1 : 0;
    out.writeInt32BE(value.revision, 2);
    out.writeDoubleBE(value.appliedFeedbackTimestamp, 6);
    out.writeDoubleBE(value.closeTime, 14);
    body.copy(out, HELD_HEADER_BYTES);
    return out;
  },
  decode(bytes) {
    const format = bytes[0];
    if (format === JSON_OBJECT_START) return JSON.parse(bytes.toString('utf8')) as HeldPrediction;
    if (format !== HELD_FORMAT && format !== HELD_FORMAT_JSON_BODY) {
      throw new Error(`held prediction: unknown state format ${format ?? 'none'} (written by a newer sampleloop?)`);
    }
    const body = bytes.subarray(HELD_HEADER_BYTES);
    const prediction = format === HELD_FORMAT ? decodeBody(body) : (JSON.parse(body.toString('utf8')) as Prediction);
    const held: HeldPrediction = {
      prediction,
      matched: bytes[1] === 1,
      revision: bytes.readInt32BE(2),
      appliedFeedbackTimestamp: bytes.readDoubleBE(6),
      closeTime: bytes.readDoubleBE(14),
    };
    if (format === HELD_FORMAT) held.encodedPrediction = body;
    return held;
  },
};

/** Recently used feature-name lists with their encoding: most records of a category share one. */
const nameShapes: Array<{ names: string[]; bytes: Buffer }> = [];
const MAX_SHAPES = 16;

function shapeFor(names: string[]): { names: string[]; bytes: Buffer } {
  for (const shape of nameShapes) if (sameNames(shape.names, names)) return shape;
  const shape = { names, bytes: Buffer.from(JSON.stringify(names), 'utf8') };
  remember(shape);
  return shape;
}

function shapeFromBytes(bytes: Buffer): string[] {
  for (const shape of nameShapes) if (shape.bytes.equals(bytes)) return shape.names;
  const shape = { names: JSON.parse(bytes.toString('utf8')) as string[], bytes: Buffer.from(bytes) };
  remember(shape);
  return shape.names;
}

function remember(shape: { names: string[]; bytes: Buffer }): void {
  nameShapes.unshift(shape);
  if (nameShapes.length > MAX_SHAPES) nameShapes.pop();
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** [u32 n][JSON of the prediction without features: n bytes][u32 m][feature names JSON: m bytes][float64 × names]. */
function encodeBody(prediction: Prediction): Buffer {
  const { features, ...rest } = prediction;
  const restBytes = Buffer.from(JSON.stringify(rest), 'utf8');
  const shape = shapeFor(Object.keys(features));
  const out = Buffer.allocUnsafe(8 + restBytes.length + shape.bytes.length + 8 * shape.names.length);
  let at = out.writeUInt32LE(restBytes.length, 0);
  at += restBytes.copy(out, at);
  at = out.writeUInt32LE(shape.bytes.length, at);
  at += shape.bytes.copy(out, at);
  for (const name of shape.names) at = out.writeDoubleLE(features[name] as number, at);
  return out;
}

function decodeBody(body: Buffer): Prediction {
  const restLength = body.readUInt32LE(0);
  const prediction = JSON.parse(body.toString('utf8', 4, 4 + restLength)) as Prediction;
  let at = 4 + restLength;
  const namesLength = body.readUInt32LE(at);
  at += 4;
  const names = shapeFromBytes(body.subarray(at, at + namesLength));
  at += namesLength;
  const features: Record<string, number> = {};
  for (const name of names) {
    const value = body.readDoubleLE(at);
    at += 8;
    if (name === '__proto__') Object.defineProperty(features, name, { value, enumerable: true, writable: true, configurable: true });
    else features[name] = value;
  }
  prediction.features = features;
  return prediction;
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
