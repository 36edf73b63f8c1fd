import type avro from 'avsc';
import type { Serializer } from '../engine/topology.js';
import { encodeFramed } from '../schemas/codec.js';
import { schemaJson, type SchemaName } from '../schemas/index.js';
import type { SchemaRegistry } from '../schemas/registry.js';

/** Output serializers with schema ids registered up front, so encoding on the hot path is synchronous. */
export interface OutputSerdes {
  serializer<V extends object>(topic: string, schema: SchemaName): Serializer<V>;
  /** Writer schemas of Confluent-framed input known so far. */
  writerSchema(id: number): avro.Type | undefined;
  schemaId(topic: string): number | undefined;
}

/** Registers `<topic>-value` subjects for every output (TopicNameStrategy, as Confluent serializers do). */
export async function registerOutputSchemas(registry: SchemaRegistry, outputs: ReadonlyArray<{ topic: string; schema: SchemaName }>): Promise<OutputSerdes> {
  const ids = new Map<string, { id: number; schema: SchemaName }>();
  for (const { topic, schema } of outputs) {
    ids.set(topic, { id: await registry.register(`${topic}-value`, schemaJson(schema)), schema });
  }
  return {
    serializer<V extends object>(topic: string, schema: SchemaName): Serializer<V> {
      const entry = ids.get(topic);
      if (!entry || entry.schema !== schema) throw new Error(`no schema registered for topic ${topic} as ${schema}`);
      const id = entry.id;
      return (record) => ({ key: record.key === null ? null : Buffer.from(record.key, 'utf8'), value: encodeFramed(schema, id, record.value) });
    },
    writerSchema: (id) => registry.cached(id),
    schemaId: (topic) => ids.get(topic)?.id,
  };
}
