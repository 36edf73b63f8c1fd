import type avro from 'avsc';
import { SchemaError } from '../engine/errors.js';
import { parseSchema } from './index.js';

/** What sampleloop needs from a schema registry (Confluent's, or the embedded LocalSchemaRegistry). */
export interface SchemaRegistry {
  /** Registers `schema` (Avro JSON text) under `subject`; resolves to its id (the existing one when already known). */
  register(subject: string, schema: string): Promise<number>;
  /** The writer schema with this id; rejects with SchemaError when the id is unknown. */
  lookup(id: number): Promise<avro.Type>;
  /** Synchronous view of the schemas fetched or registered so far (the decode hot path uses this). */
  cached(id: number): avro.Type | undefined;
}

export interface RegistryEntry {
  id: number;
  subject: string;
  schema: string;
}

/** Synchronous persistence of LocalSchemaRegistry: `save` is called once per new (subject, id) pair. */
export interface RegistryStorage {
  load(): Array<RegistryEntry>;
  save(entry: RegistryEntry): void;
}

export function memoryRegistryStorage(): RegistryStorage {
  const entries: RegistryEntry[] = [];
  return {
    load: () => entries.map((entry) => ({ ...entry })),
    save: (entry) => {
      entries.push({ ...entry });
    },
  };
}

interface KnownSchema {
  id: number;
  schema: string;
  type: avro.Type;
}

/**
 * Schema registry of the embedded mode. Like Confluent's, ids are global and start at 1: the same
 * schema (compared in canonical form: parsed JSON with sorted keys, so whitespace and key order do
 * not matter) gets the same id under every subject.
 */
export class LocalSchemaRegistry implements SchemaRegistry {
  private readonly byId = new Map<number, KnownSchema>();
  private readonly byCanonical = new Map<string, KnownSchema>();
  /** subject → ids registered under it, oldest first. */
  private readonly subjects = new Map<string, number[]>();
  private nextId = 1;

  constructor(private readonly storage: RegistryStorage = memoryRegistryStorage()) {
    for (const entry of storage.load()) this.restore(entry);
  }

  register(subject: string, schema: string): Promise<number> {
    try {
      return Promise.resolve(this.registerSync(subject, schema));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new SchemaError(String(err)));
    }
  }

  /** Same as `register`, for callers that cannot await (startup of the embedded engine, tests). */
  registerSync(subject: string, schema: string): number {
    if (subject.length === 0) throw new SchemaError('schema subject must not be empty');
    const { canonical, type } = parseCanonical(schema);
    let known = this.byCanonical.get(canonical);
    if (known === undefined) {
      known = { id: this.nextId, schema, type };
      this.remember(known, canonical);
    }
    const ids = this.subjects.get(subject) ?? [];
    if (!ids.includes(known.id)) {
      this.storage.save({ id: known.id, subject, schema: known.schema });
      ids.push(known.id);
      this.subjects.set(subject, ids);
    }
    return known.id;
  }

  lookup(id: number): Promise<avro.Type> {
    const known = this.byId.get(id);
    if (known === undefined) return Promise.reject(new SchemaError(`unknown schema id ${id}: it was never registered in the local schema registry`));
    return Promise.resolve(known.type);
  }

  cached(id: number): avro.Type | undefined {
    return this.byId.get(id)?.type;
  }

  /** Schema text registered with this id. */
  schemaText(id: number): string | undefined {
    return this.byId.get(id)?.schema;
  }

  /** Id of the newest schema registered under `subject`. */
  latestId(subject: string): number | undefined {
    const ids = this.subjects.get(subject);
    return ids === undefined ? undefined : ids[ids.length - 1];
  }

  private restore(entry: RegistryEntry): void {
    const { canonical, type } = parseCanonical(entry.schema);
    const sameId = this.byId.get(entry.id);
    const sameSchema = this.byCanonical.get(canonical);
    if ((sameId !== undefined || sameSchema !== undefined) && sameId !== sameSchema) {
      throw new SchemaError(`corrupt schema registry storage: id ${entry.id} (subject "${entry.subject}") conflicts with an earlier entry`);
    }
    if (sameId === undefined) this.remember({ id: entry.id, schema: entry.schema, type }, canonical);
    const ids = this.subjects.get(entry.subject) ?? [];
    if (!ids.includes(entry.id)) ids.push(entry.id);
    this.subjects.set(entry.subject, ids);
  }

  private remember(known: KnownSchema, canonical: string): void {
    this.byId.set(known.id, known);
    this.byCanonical.set(canonical, known);
    this.nextId = Math.max(this.nextId, known.id + 1);
  }
}

function parseCanonical(schema: string): { canonical: string; type: avro.Type } {
  let json: unknown;
  try {
    json = JSON.parse(schema);
  } catch (err) {
    throw new SchemaError(`schema is not valid JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return { canonical: JSON.stringify(sortKeys(json)), type: parseSchema(json) };
}

/** Object keys sorted at every level; array order (fields, symbols, union branches) is meaningful and kept. */
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  const record = value as Record<string, unknown>;
  return Object.fromEntries(Object.keys(record).sort().map((key) => [key, sortKeys(record[key])]));
}
