import { createRequire } from 'node:module';
import type avro from 'avsc';
import { SchemaError, errorMessage } from '../errors.js';
import { parseSchema } from '../../schemas/index.js';
import type { SchemaRegistry } from '../../schemas/registry.js';
import { referencedSchemaId } from '../../schemas/codec.js';
import type { SourceRecord } from '../record.js';

interface ConfluentClient {
  register(schema: { type: string; schema: string }, options: { subject: string }): Promise<{ id: number }>;
  getSchema(id: number): Promise<{ schema?: () => unknown } | object>;
}

const require = createRequire(import.meta.url);
const { SchemaRegistry: ConfluentSchemaRegistryClient, SchemaType } = require('@kafkajs/confluent-schema-registry') as {
  SchemaRegistry: new (args: { host: string; auth?: { username: string; password: string } }) => ConfluentClient;
  SchemaType: { AVRO: string };
};

/**
 * A Confluent-compatible schema registry (Confluent Schema Registry, Apicurio's ccompat API, ...)
 * through @kafkajs/confluent-schema-registry. Writer schemas are re-parsed with sampleloop's
 * bounded Avro types so hostile bytes cannot make the decoder allocate without limit.
 */
export class ConfluentSchemaRegistry implements SchemaRegistry {
  private readonly client: ConfluentClient;
  private readonly types = new Map<number, avro.Type>();

  private readonly url: string;

  constructor(options: { url: string; username?: string; password?: string }) {
    this.url = options.url;
    this.client = new ConfluentSchemaRegistryClient({
      host: options.url,
      ...(options.username !== undefined ? { auth: { username: options.username, password: options.password ?? '' } } : {}),
    });
  }

  async register(subject: string, schema: string): Promise<number> {
    try {
      const { id } = await this.client.register({ type: SchemaType.AVRO, schema }, { subject });
      if (!this.types.has(id)) this.types.set(id, parseSchema(schema));
      return id;
    } catch (err) {
      throw new SchemaError(
        `cannot register the schema of subject "${subject}" in the schema registry at ${this.url} (kafka.schemaRegistry.url): ${describeRegistryError(err)}. ` +
          'Check that the registry runs and that the URL is its Confluent-compatible API (Apicurio: .../apis/ccompat/v7)',
        { cause: err, retriable: true },
      );
    }
  }

  async lookup(id: number): Promise<avro.Type> {
    const known = this.types.get(id);
    if (known) return known;
    let found: unknown;
    try {
      found = await this.client.getSchema(id);
    } catch (err) {
      throw new SchemaError(`schema id ${id} is not in the schema registry: ${errorMessage(err)}`, { cause: err });
    }
    const writer = found as { schema?: () => unknown };
    if (typeof writer.schema !== 'function') throw new SchemaError(`schema id ${id} is not an Avro schema`);
    const type = parseSchema(writer.schema());
    this.types.set(id, type);
    return type;
  }

  cached(id: number): avro.Type | undefined {
    return this.types.get(id);
  }
}

/** Fetches the writer schemas of Confluent-framed records not seen before, so decoding stays synchronous. */
export async function fetchWriterSchemas(registry: SchemaRegistry, records: readonly SourceRecord[]): Promise<void> {
  const missing = new Set<number>();
  for (const r of records) {
    const id = r.value ? referencedSchemaId(r.value) : undefined;
    if (id !== undefined && !registry.cached(id)) missing.add(id);
  }
  for (const id of missing) {
    await registry.lookup(id).catch(() => undefined); // unknown ids become dead letters (unknown-schema-id)
  }
}

/** The client reports a refused connection as "status 400" and some bodies as "[object Object]": say what happened. */
function describeRegistryError(err: unknown): string {
  const e = err as { status?: number; message?: string; originalError?: unknown; cause?: unknown } | null;
  const text = errorMessage(err);
  const network = /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET/.exec(text);
  if (network) return `the registry cannot be reached (${network[0]})`;
  if (e?.status === 404) return 'HTTP 404: no Confluent-compatible API at this URL';
  if (e?.status === 401 || e?.status === 403) return `HTTP ${e.status}: check kafka.schemaRegistry.username / password`;
  return text.replace('[object Object]', 'unexpected response body');
}
