import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import avro from 'avsc';
import { schemaDir } from '../config/paths.js';
import { SchemaError, errorMessage } from '../engine/errors.js';

export const SCHEMA_NAMESPACE = 'io.sampleloop';

/** Every schema, in dependency order (a schema only references schemas listed before it). */
export const schemaNames = [
  'Request',
  'Prediction',
  'Feedback',
  'LabeledSample',
  'UnmatchedPrediction',
  'OrphanFeedback',
  'LateRecord',
  'ReviewRecord',
  'DeadLetter',
  'TrainingSnapshot',
  'ModelVersion',
  'RetrainTrigger',
] as const;

export type SchemaName = (typeof schemaNames)[number];

type AvroSchema = Parameters<typeof avro.Type.forSchema>[0];
type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

interface LoadedSchemas {
  types: Map<SchemaName, avro.Type>;
  raw: Map<SchemaName, JsonValue>;
}

let loaded: LoadedSchemas | undefined;
const jsonCache = new Map<SchemaName, string>();

/** The avsc type of a schema; all schemas are loaded (once) on first use, sharing one registry of named types. */
export function schemaOf(name: SchemaName): avro.Type {
  const type = load().types.get(name);
  if (type === undefined) throw new SchemaError(`unknown schema "${String(name)}"; known: ${schemaNames.join(', ')}`);
  return type;
}

/**
 * Self-contained JSON text of a schema, as registered with a schema registry: named types defined in
 * other files are inlined at their first use, and every attribute (doc, default, logicalType) is kept.
 */
export function schemaJson(name: SchemaName): string {
  const cached = jsonCache.get(name);
  if (cached !== undefined) return cached;
  const { raw } = load();
  const definitions = new Map<string, JsonValue>();
  for (const [schemaName, schema] of raw) definitions.set(`${SCHEMA_NAMESPACE}.${schemaName}`, schema);
  const root = raw.get(name);
  if (root === undefined) throw new SchemaError(`unknown schema "${String(name)}"; known: ${schemaNames.join(', ')}`);
  const text = JSON.stringify(inlineNamedTypes(root, SCHEMA_NAMESPACE, definitions, new Set()));
  jsonCache.set(name, text);
  return text;
}

export function isSchemaName(value: string): value is SchemaName {
  return (schemaNames as readonly string[]).includes(value);
}

function load(): LoadedSchemas {
  if (loaded !== undefined) return loaded;
  const registry: Record<string, avro.Type> = {};
  const types = new Map<SchemaName, avro.Type>();
  const raw = new Map<SchemaName, JsonValue>();
  for (const name of schemaNames) {
    const file = join(schemaDir(), `${name}.avsc`);
    let json: JsonValue;
    try {
      json = JSON.parse(readFileSync(file, 'utf8')) as JsonValue;
    } catch (err) {
      throw new SchemaError(`cannot read schema file ${file}: ${errorMessage(err)}`, { cause: err });
    }
    try {
      types.set(name, parseSchema(json, registry));
    } catch (err) {
      throw new SchemaError(`invalid Avro schema in ${file}: ${errorMessage(err)}`, { cause: err });
    }
    raw.set(name, json);
  }
  loaded = { types, raw };
  return loaded;
}

/**
 * Parses an Avro schema (JSON text or object) into an avsc type whose maps and arrays are bounded
 * (see BoundedMapType). Every type that decodes untrusted bytes must come from here.
 */
export function parseSchema(schema: unknown, registry: Record<string, avro.Type> = {}): avro.Type {
  let json: unknown = schema;
  if (typeof schema === 'string') {
    try {
      json = JSON.parse(schema);
    } catch (err) {
      throw new SchemaError(`schema is not valid JSON: ${errorMessage(err)}`, { cause: err });
    }
  }
  try {
    const type = avro.Type.forSchema(json as AvroSchema, { registry, wrapUnions: 'auto', typeHook: boundedCollections });
    boundedTypes.add(type);
    return type;
  } catch (err) {
    throw new SchemaError(`invalid Avro schema: ${errorMessage(err)}`, { cause: err });
  }
}

/** True when the type was built by parseSchema (its collections are bounded). */
export function isBoundedType(type: avro.Type): boolean {
  return boundedTypes.has(type);
}

const boundedTypes = new WeakSet<avro.Type>();

/** avsc's Tap (internal): a cursor over the buffer being decoded. */
interface Tap {
  buf: Buffer;
  pos: number;
  readLong(): number;
  readString(): string | undefined;
  skipString(): void;
  skipLong(): void;
}

/** A type or resolver as avsc uses it while decoding. */
interface ElementCodec {
  _read(tap: Tap): unknown;
  _skip(tap: Tap): void;
}

type TypeConstructor = new (schema: unknown, opts: unknown) => avro.Type;
const AvscMapType = avro.types.MapType as unknown as TypeConstructor;
const AvscArrayType = avro.types.ArrayType as unknown as TypeConstructor;

/** Arrays of zero-width items (null, empty records) cannot be bounded by the bytes left; cap them instead. */
const MAX_ZERO_WIDTH_ITEMS = 1_000_000;

/**
 * avsc trusts the block counts of maps and arrays: garbage bytes announcing 2^40 entries make it loop
 * (past the end of the buffer) practically forever. These subclasses reject a block that claims more
 * entries than there are bytes left, which a valid encoding never does (a map key takes ≥ 1 byte).
 * avsc types are frozen, so the override is a subclass, installed through `typeHook`. Resolvers copy
 * `_read` from the reader type, so resolved decoding is bounded too.
 */
class BoundedMapType extends AvscMapType {
  _read(tap: Tap): Record<string, unknown> {
    const values = (this as unknown as { valuesType: ElementCodec }).valuesType;
    const map: Record<string, unknown> = {};
    for (;;) {
      const n = readBlockCount(tap);
      if (n === 0) return map;
      if (!(n <= tap.buf.length - tap.pos)) return invalidate(tap, map);
      for (let i = 0; i < n; i++) {
        const key = String(tap.readString());
        const value = values._read(tap);
        if (key === '__proto__') Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
        else map[key] = value;
      }
    }
  }

  _skip(tap: Tap): void {
    const values = (this as unknown as { valuesType: ElementCodec }).valuesType;
    skipBlocks(tap, () => {
      tap.skipString();
      values._skip(tap);
    });
  }
}

class BoundedArrayType extends AvscArrayType {
  _read(tap: Tap): unknown[] {
    const items = (this as unknown as { itemsType: ElementCodec }).itemsType;
    const array: unknown[] = [];
    for (;;) {
      let n = readBlockCount(tap);
      if (n === 0) return array;
      if (!(n <= tap.buf.length - tap.pos)) {
        const before = tap.pos;
        array.push(items._read(tap));
        if (tap.pos !== before || !(n <= MAX_ZERO_WIDTH_ITEMS)) return invalidate(tap, array);
        n--;
      }
      for (let i = 0; i < n; i++) array.push(items._read(tap));
    }
  }

  _skip(tap: Tap): void {
    const items = (this as unknown as { itemsType: ElementCodec }).itemsType;
    skipBlocks(tap, () => items._skip(tap));
  }
}

/** Count of the next block (0 = end); a negative count is followed by the block's byte size, skipped here. */
function readBlockCount(tap: Tap): number {
  const n = tap.readLong();
  if (n >= 0) return n;
  tap.skipLong();
  return -n;
}

function skipBlocks(tap: Tap, skipOne: () => void): void {
  for (;;) {
    const n = tap.readLong();
    if (n === 0) return;
    if (n < 0) {
      const size = tap.readLong();
      if (!(size >= 0)) return void invalidate(tap, null);
      tap.pos += size;
      continue;
    }
    if (!(n <= tap.buf.length - tap.pos)) {
      const before = tap.pos;
      skipOne();
      if (tap.pos !== before || !(n <= MAX_ZERO_WIDTH_ITEMS)) return void invalidate(tap, null);
      for (let i = 1; i < n; i++) skipOne();
      continue;
    }
    for (let i = 0; i < n; i++) skipOne();
  }
}

function invalidate<T>(tap: Tap, partial: T): T {
  tap.pos = tap.buf.length + 1;
  return partial;
}

function boundedCollections(schema: unknown, opts: unknown): avro.Type | undefined {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return undefined;
  const kind = (schema as { type?: unknown }).type;
  if (kind === 'map') return new BoundedMapType(schema, opts);
  if (kind === 'array') return new BoundedArrayType(schema, opts);
  return undefined;
}

const PRIMITIVES = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string']);

function qualify(name: string, namespace: string): string {
  return name.includes('.') || PRIMITIVES.has(name) ? name : `${namespace}.${name}`;
}

/** Replaces the first reference to each named type from `definitions` by its (recursively inlined) definition. */
function inlineNamedTypes(
  node: JsonValue,
  namespace: string,
  definitions: ReadonlyMap<string, JsonValue>,
  defined: Set<string>,
): JsonValue {
  if (typeof node === 'string') {
    const fullName = qualify(node, namespace);
    const definition = definitions.get(fullName);
    if (definition === undefined || defined.has(fullName)) return node;
    return inlineNamedTypes(definition, namespace, definitions, defined);
  }
  if (Array.isArray(node)) return node.map((branch) => inlineNamedTypes(branch, namespace, definitions, defined));
  if (node === null || typeof node !== 'object') return node;

  let innerNamespace = namespace;
  if (typeof node.name === 'string' && (node.type === 'record' || node.type === 'enum' || node.type === 'fixed')) {
    if (typeof node.namespace === 'string') innerNamespace = node.namespace;
    const fullName = qualify(node.name, innerNamespace);
    if (fullName.includes('.')) innerNamespace = fullName.slice(0, fullName.lastIndexOf('.'));
    defined.add(fullName);
  }
  const out: { [key: string]: JsonValue } = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'type' || key === 'items' || key === 'values') {
      out[key] = inlineNamedTypes(value, innerNamespace, definitions, defined);
    } else if (key === 'fields' && Array.isArray(value)) {
      out[key] = value.map((field) => inlineField(field, innerNamespace, definitions, defined));
    } else {
      out[key] = value;
    }
  }
  return out;
}

function inlineField(
  field: JsonValue,
  namespace: string,
  definitions: ReadonlyMap<string, JsonValue>,
  defined: Set<string>,
): JsonValue {
  if (field === null || typeof field !== 'object' || Array.isArray(field)) return field;
  const out: { [key: string]: JsonValue } = {};
  for (const [key, value] of Object.entries(field)) {
    out[key] = key === 'type' ? inlineNamedTypes(value, namespace, definitions, defined) : value;
  }
  return out;
}
