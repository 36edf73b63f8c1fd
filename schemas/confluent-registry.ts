import { readFileSync } from 'node:fs';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { createRequire } from 'node:module';
import type avro from 'avsc';
import { SchemaError, errorMessage } from '../engine/errors.js';
import { parseSchema } from './index.js';
import type { SchemaRegistry } from './registry.js';
import { referencedSchemaId } from './codec.js';
import type { SourceRecord } from '../engine/record.js';

interface ConfluentClient {
  getSchema(id: number): Promise<{ schema?: () => unknown } | object>;
}

const require = createRequire(import.meta.url);
const { SchemaRegistry: ConfluentSchemaRegistryClient } = require('@kafkajs/confluent-schema-registry') as {
  SchemaRegistry: new (args: { host: string; auth?: { username: string; password: string }; agent?: HttpsAgent }) => ConfluentClient;
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
  private readonly authorization: string | undefined;

  /** https with a CA to trust (kafka.schemaRegistry.caLocation). */
  private readonly agent: HttpsAgent | undefined;

  constructor(options: { url: string; username?: string; password?: string; caLocation?: string }) {
    this.url = options.url;
    this.authorization = options.username !== undefined ? `Basic ${Buffer.from(`${options.username}:${options.password ?? ''}`).toString('base64')}` : undefined;
    if (options.caLocation !== undefined) {
      let ca: Buffer;
      try {
        ca = readFileSync(options.caLocation);
      } catch (err) {
        throw new SchemaError(`cannot read the registry's CA certificate ${options.caLocation} (kafka.schemaRegistry.caLocation): ${errorMessage(err)}`, { cause: err });
      }
      this.agent = new HttpsAgent({ ca, keepAlive: true });
    }
    this.client = new ConfluentSchemaRegistryClient({
      host: options.url,
      ...(options.username !== undefined ? { auth: { username: options.username, password: options.password ?? '' } } : {}),
      ...(this.agent ? { agent: this.agent } : {}),
    });
  }

  /**
   * POST /subjects/<subject>/versions, as Confluent serializers do with auto.register.schemas: the
   * id of that schema (existing or new version); the registry's own compatibility rule decides. The
   * subject's compatibility level is neither checked against a fixed one nor changed (the
   * @kafkajs client's register() refuses subjects not at BACKWARD and sets new subjects to BACKWARD).
   */
  async register(subject: string, schema: string): Promise<number> {
    try {
      const id = await this.postSchema(subject, schema);
      if (!this.types.has(id)) this.types.set(id, parseSchema(schema));
      return id;
    } catch (err) {
      if ((err as { status?: unknown }).status === 409) {
        throw new SchemaError(
          `cannot register the schema of subject "${subject}" in the schema registry at ${this.url}: ${errorMessage(err)}. ` +
            `sampleloop's schemas only add fields with defaults (BACKWARD and FORWARD compatible with its earlier releases); a subject holding another schema needs its own topic name (topics.*)`,
          { cause: err },
        );
      }
      throw new SchemaError(
        `cannot register the schema of subject "${subject}" in the schema registry at ${this.url} (kafka.schemaRegistry.url): ${describeRegistryError(err)}. ` +
          'Check that the registry runs and that the URL is its Confluent-compatible API (Apicurio: .../apis/ccompat/v7)',
        { cause: err, retriable: true },
      );
    }
  }

  private async postSchema(subject: string, schema: string): Promise<number> {
    const headers: Record<string, string> = { 'content-type': 'application/vnd.schemaregistry.v1+json', accept: 'application/vnd.schemaregistry.v1+json, application/json' };
    if (this.authorization !== undefined) headers.authorization = this.authorization;
    let response: { status: number; text: string };
    try {
      response = await this.post(`${this.url.replace(/\/+$/, '')}/subjects/${encodeURIComponent(subject)}/versions`, headers, JSON.stringify({ schema }));
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      throw new Error(`${errorMessage(err)}${code ? ` (${String(code)})` : ''}`, { cause: err });
    }
    const text = response.text;
    const ok = response.status >= 200 && response.status < 300;
    let body: { id?: unknown; message?: unknown; error_code?: unknown } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      // not JSON: reported below with the status
    }
    if (ok && typeof body.id === 'number') return body.id;
    if (response.status === 409) {
      throw Object.assign(new Error(`HTTP 409: the registry refuses it as incompatible with the subject's existing versions under the subject's compatibility level (${typeof body.message === 'string' ? body.message : text.slice(0, 200)})`), { status: 409 });
    }
    throw Object.assign(new Error(`HTTP ${response.status}: ${typeof body.message === 'string' ? body.message : text.slice(0, 200)}`), { status: response.status });
  }

  /** One POST with node:http(s), so the CA of `caLocation` is trusted as by the registry client. */
  private post(url: string, headers: Record<string, string>, body: string): Promise<{ status: number; text: string }> {
    return new Promise((resolvePost, reject) => {
      const target = new URL(url);
      const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(target, { method: 'POST', headers, timeout: 30_000, ...(this.agent && target.protocol === 'https:' ? { agent: this.agent } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolvePost({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('no answer within 30 s'), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end(body);
    });
  }

  async lookup(id: number): Promise<avro.Type> {
    const known = this.types.get(id);
    if (known) return known;
    let found: unknown;
    try {
      found = await this.client.getSchema(id);
    } catch (err) {
      // Only a 404 says the id is unknown; a refused connection, a timeout, a 5xx or a 401 says nothing about it.
      if ((err as { status?: unknown } | null)?.status === 404) throw new SchemaError(`schema id ${id} is not in the schema registry: ${errorMessage(err)}`, { cause: err });
      throw new SchemaError(`cannot look up schema id ${id} in the schema registry at ${this.url}: ${describeRegistryError(err)}`, { cause: err, retriable: true });
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

export interface FetchWriterSchemasOptions {
  /** How long a registry that cannot be reached (or answers other than 404) is retried before giving up (default 60 s). */
  retryForMs?: number;
  /** Called before each retry. */
  onRetry?: (err: unknown, attempt: number) => void;
}

/**
 * Fetches the writer schemas of Confluent-framed records not seen before, so decoding stays
 * synchronous. An id the registry does not have (404) is left out: its records become dead letters
 * (`unknown-schema-id`). A registry that cannot answer (unreachable, 5xx, 401, ...) is retried with
 * backoff for `retryForMs`, then the error is thrown: valid records are never dead-lettered because
 * of a registry outage.
 */
export async function fetchWriterSchemas(registry: SchemaRegistry, records: readonly SourceRecord[], options: FetchWriterSchemasOptions = {}): Promise<void> {
  const missing = new Set<number>();
  for (const r of records) {
    const id = r.value ? referencedSchemaId(r.value) : undefined;
    if (id !== undefined && !registry.cached(id)) missing.add(id);
  }
  const retryForMs = options.retryForMs ?? 60_000;
  for (const id of missing) {
    const deadline = Date.now() + retryForMs;
    for (let attempt = 1; ; attempt++) {
      try {
        await registry.lookup(id);
        break;
      } catch (err) {
        if (!(err instanceof SchemaError && err.retriable)) break; // unknown id: its records become dead letters
        if (Date.now() >= deadline) throw err;
        options.onRetry?.(err, attempt);
        await new Promise((resolve) => setTimeout(resolve, Math.min(250 * 2 ** (attempt - 1), 5_000, Math.max(0, deadline - Date.now()))));
      }
    }
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
  const tls = /CERT_[A-Z_]+|SELF_SIGNED_CERT[A-Z_]*|UNABLE_TO_[A-Z_]+|ERR_TLS_[A-Z_]+|EPROTO/.exec(text);
  if (tls) return `the registry's TLS certificate is not trusted or the handshake failed (${tls[0]}): check kafka.schemaRegistry.caLocation (the CA that signed it)`;
  return text.replace('[object Object]', 'unexpected response body');
}
