import { isUtf8 } from 'node:buffer';
import type avro from 'avsc';
import { DecodeError, SchemaError, errorMessage } from '../engine/errors.js';
import { isBoundedType, parseSchema, schemaOf, type SchemaName } from './index.js';
import { rejected, validateRecord, type DecodeResult, type InputSchemaName } from './validate.js';

export type { DecodeResult, InputSchemaName } from './validate.js';

/** Synchronous lookup of a writer schema by its registry id (e.g. `SchemaRegistry.cached`). */
export type WriterSchemaLookup = (id: number) => avro.Type | undefined;

export interface DecodeOptions {
  /** Records longer than this are rejected with `oversize` before any parsing. */
  maxBytes: number;
  /** Needed for Confluent-framed input; without it every framed record is `unknown-schema-id`. */
  writerSchema?: WriterSchemaLookup;
}

/** Confluent wire format: magic byte 0, 4-byte big-endian schema id, then the Avro body. */
const MAGIC_BYTE = 0;
const FRAME_HEADER_BYTES = 5;
const OPEN_BRACE = 0x7b;

/**
 * Decodes and validates one input record. The encoding is detected from the bytes:
 * first non-whitespace byte `{` → JSON; byte 0 = 0x00 → Confluent-framed Avro; anything else → raw
 * Avro written with our schema. Never throws: every failure is a `{ ok: false, reasonCode }`.
 */
export function decodeRecord<T>(name: InputSchemaName, bytes: Buffer | null, opts: DecodeOptions): DecodeResult<T> {
  try {
    if (bytes === null || bytes === undefined) return rejected('undecodable', 'record has no value (null / tombstone)');
    if (bytes.length > opts.maxBytes) {
      return rejected('oversize', `record is ${bytes.length} bytes; the limit is ${opts.maxBytes}`);
    }
    if (bytes.length === 0) return rejected('undecodable', 'record value is empty');
    if (startsWithJsonObject(bytes)) return decodeJson<T>(name, bytes);
    if (bytes[0] === MAGIC_BYTE) return decodeFramedRecord<T>(name, bytes, opts.writerSchema);
    const avroResult = decodeAvroBody<T>(name, bytes, 0, schemaOf(name), null);
    // Text that is no JSON object (a JSON array or string, a line that is not JSON) is rarely a valid
    // Avro body too; when it is not, say what it is rather than why Avro could not read it.
    if (!avroResult.ok && avroResult.reasonCode === 'undecodable' && isText(bytes)) return notAJsonObject(bytes);
    return avroResult;
  } catch (err) {
    return rejected('undecodable', `cannot decode ${name}: ${errorMessage(err)}`);
  }
}

/** The schema id when the bytes are Confluent-framed (so the caller can fetch unknown writer schemas first). */
export function referencedSchemaId(bytes: Buffer): number | undefined {
  if (bytes.length < FRAME_HEADER_BYTES || bytes[0] !== MAGIC_BYTE) return undefined;
  return bytes.readUInt32BE(1);
}

/** Confluent wire format encoding of a record of one of our schemas. Throws SchemaError when the value does not fit. */
export function encodeFramed(name: SchemaName, schemaId: number, value: object): Buffer {
  if (!Number.isInteger(schemaId) || schemaId < 0 || schemaId > 0xffffffff) {
    throw new SchemaError(`schema id must be an integer in [0, 2^32), got ${schemaId}`);
  }
  const type = schemaOf(name);
  let end: number;
  try {
    end = type.encode(value, scratch, FRAME_HEADER_BYTES);
    if (end < 0) {
      scratch = Buffer.allocUnsafe(nextPowerOfTwo(scratch.length - end));
      end = type.encode(value, scratch, FRAME_HEADER_BYTES);
    }
  } catch (err) {
    throw new SchemaError(`value is not a valid ${name}: ${errorMessage(err)}`, { cause: err });
  }
  const out = Buffer.allocUnsafe(end);
  out[0] = MAGIC_BYTE;
  out.writeUInt32BE(schemaId, 1);
  scratch.copy(out, FRAME_HEADER_BYTES, FRAME_HEADER_BYTES, end);
  return out;
}

/** Decodes Confluent-framed bytes with their own writer schema (no validation, no resolution). Throws DecodeError. */
export function decodeFramed(bytes: Buffer, lookup: WriterSchemaLookup): { schemaId: number; value: unknown } {
  const schemaId = referencedSchemaId(bytes);
  if (schemaId === undefined) {
    throw new DecodeError(`not Confluent-framed: expected magic byte 0 and a 4-byte schema id, got ${bytes.length} bytes starting with ${bytes[0] ?? 'nothing'}`);
  }
  const writer = lookup(schemaId);
  if (writer === undefined) {
    throw new DecodeError(`unknown schema id ${schemaId}: it is not in the schema registry cache (fetch it with SchemaRegistry.lookup first)`);
  }
  let decoded: { value: unknown; offset: number };
  try {
    decoded = bounded(writer).decode(bytes, FRAME_HEADER_BYTES);
  } catch (err) {
    throw new DecodeError(`cannot decode Avro body written with schema ${schemaId}: ${errorMessage(err)}`, { cause: err });
  }
  if (decoded.offset !== bytes.length) {
    throw new DecodeError(`cannot decode Avro body written with schema ${schemaId}: ${bodyProblem(decoded.offset, bytes.length)}`);
  }
  return { schemaId, value: decoded.value };
}

/** JSON encoding of an input record (the format `decodeRecord` detects by its leading `{`). */
export function encodeJson(value: object): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

let scratch = Buffer.allocUnsafe(64 * 1024);

function nextPowerOfTwo(n: number): number {
  let size = 1024;
  while (size < n) size *= 2;
  return size;
}

function startsWithJsonObject(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (byte === OPEN_BRACE) return true;
    if (byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) return false;
  }
  return false;
}

/** Printable UTF-8 (tabs and line breaks allowed): bytes a producer meant as text. */
function isText(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i] as number;
    if (byte < 0x20 ? byte !== 0x09 && byte !== 0x0a && byte !== 0x0d : byte === 0x7f) return false;
  }
  return isUtf8(bytes);
}

function notAJsonObject<T>(bytes: Buffer): DecodeResult<T> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return rejected('undecodable', 'not a JSON object: the value is text but not JSON');
  }
  const kind = Array.isArray(parsed) ? 'a JSON array' : parsed === null ? 'JSON null' : `a JSON ${typeof parsed}`;
  return rejected('undecodable', `not a JSON object: the value is ${kind}`);
}

function decodeJson<T>(name: InputSchemaName, bytes: Buffer): DecodeResult<T> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    // V8's message quotes the input around the error: keep only the position, never record content.
    const position = /position (\d+)/.exec(errorMessage(err))?.[1];
    return rejected('undecodable', position === undefined ? 'not valid JSON' : `not valid JSON (syntax error at position ${position})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return rejected('undecodable', 'JSON value is not an object');
  }
  return validateRecord<T>(name, parsed as Record<string, unknown>);
}

function decodeFramedRecord<T>(name: InputSchemaName, bytes: Buffer, lookup: WriterSchemaLookup | undefined): DecodeResult<T> {
  if (bytes.length < FRAME_HEADER_BYTES) {
    return rejected('undecodable', `starts with the magic byte 0 but is only ${bytes.length} bytes, shorter than the 5-byte header`);
  }
  const schemaId = bytes.readUInt32BE(1);
  const writer = lookup?.(schemaId);
  if (writer === undefined) {
    const why = lookup === undefined ? 'no schema registry is configured for this input' : 'it is not in the schema registry';
    return rejected('unknown-schema-id', `record is framed with schema id ${schemaId} but ${why}`);
  }
  const reader = schemaOf(name);
  const resolution = resolverFor(writer, reader);
  if (typeof resolution === 'string') {
    return rejected('undecodable', `writer schema ${schemaId} cannot be read as ${name}: ${resolution}`);
  }
  return decodeAvroBody<T>(name, bytes, FRAME_HEADER_BYTES, reader, resolution);
}

function decodeAvroBody<T>(
  name: InputSchemaName,
  bytes: Buffer,
  start: number,
  reader: avro.Type,
  resolver: avro.Resolver | null,
): DecodeResult<T> {
  let decoded: { value: unknown; offset: number };
  try {
    decoded = resolver === null ? reader.decode(bytes, start) : reader.decode(bytes, start, resolver);
  } catch (err) {
    return rejected('undecodable', `not a valid Avro ${name}: ${errorMessage(err)}`);
  }
  if (decoded.offset !== bytes.length) {
    return rejected('undecodable', `not a valid Avro ${name}: ${bodyProblem(decoded.offset, bytes.length)}`);
  }
  return validateRecord<T>(name, decoded.value as Record<string, unknown>);
}

function bodyProblem(offset: number, length: number): string {
  return offset < 0 ? 'the bytes end before the record does' : `${length - offset} unexpected bytes after the record`;
}

/** Per writer type: the resolver to each reader (null when writer and reader are the same schema), or why there is none. */
const resolverCache = new WeakMap<avro.Type, Map<avro.Type, avro.Resolver | null | string>>();
const boundedCopies = new WeakMap<avro.Type, avro.Type>();

function resolverFor(writer: avro.Type, reader: avro.Type): avro.Resolver | null | string {
  let perReader = resolverCache.get(writer);
  if (perReader === undefined) {
    perReader = new Map();
    resolverCache.set(writer, perReader);
  }
  let resolution = perReader.get(reader);
  if (resolution === undefined) {
    resolution = createResolution(writer, reader);
    perReader.set(reader, resolution);
  }
  return resolution;
}

function createResolution(writer: avro.Type, reader: avro.Type): avro.Resolver | null | string {
  try {
    if (writer === reader || writer.equals(reader)) return null;
    return reader.createResolver(bounded(writer), { ignoreNamespaces: true });
  } catch (err) {
    return errorMessage(err);
  }
}

/** Writer types built elsewhere (another registry client) are re-parsed once so their collections are bounded too. */
function bounded(type: avro.Type): avro.Type {
  if (isBoundedType(type)) return type;
  let copy = boundedCopies.get(type);
  if (copy === undefined) {
    copy = parseSchema(type.schema());
    boundedCopies.set(type, copy);
  }
  return copy;
}
