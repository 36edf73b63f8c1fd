/**
 * Writer-schema lookups: an id the registry does not have (404) becomes a dead letter; a registry
 * that cannot answer (unreachable, 5xx) is retried and then fails, so no valid record is
 * dead-lettered because of an outage.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SchemaError } from '../engine/errors.js';
import { ConfluentSchemaRegistry, fetchWriterSchemas } from '../schemas/confluent-registry.js';
import type { SourceRecord } from '../engine/record.js';
import { encodeFramed } from '../schemas/codec.js';
import { schemaJson } from '../schemas/index.js';

const feedback = { requestId: 'r-1', timestamp: 1, source: '', actualLabel: 'a', correct: null };

function framed(id: number): SourceRecord {
  return { topic: 'feedback', partition: 0, offset: 0, key: null, value: encodeFramed('Feedback', id, feedback), timestamp: 1, headers: {} };
}

let server: Server | undefined;
afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

/** A registry answering GET /schemas/ids/<id> with `answer(requestNumber)` (status, body). */
async function registry(answer: (n: number) => [number, unknown]): Promise<string> {
  let n = 0;
  server = createServer((_req, res) => {
    const [status, body] = answer(++n);
    res.writeHead(status, { 'content-type': 'application/vnd.schemaregistry.v1+json' });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => (server as Server).listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('fetchWriterSchemas', () => {
  it('leaves an id the registry does not know (404) to become a dead letter', async () => {
    const url = await registry(() => [404, { error_code: 40403, message: 'Schema not found' }]);
    const reg = new ConfluentSchemaRegistry({ url });
    await expect(fetchWriterSchemas(reg, [framed(7)], { retryForMs: 5_000 })).resolves.toBeUndefined();
    expect(reg.cached(7)).toBeUndefined();
  });

  it('retries while the registry fails, then decodes with the schema it returns', async () => {
    // The client itself retries a 5xx a few times; a longer outage reaches fetchWriterSchemas' retry.
    const url = await registry((n) => (n <= 8 ? [503, { error_code: 50301, message: 'unavailable' }] : [200, { schema: schemaJson('Feedback') }]));
    const reg = new ConfluentSchemaRegistry({ url });
    const retries: number[] = [];
    await fetchWriterSchemas(reg, [framed(7)], { retryForMs: 30_000, onRetry: (_err, attempt) => retries.push(attempt) });
    expect(retries.length).toBeGreaterThan(0);
    expect(reg.cached(7)).toBeDefined();
  });

  it('throws a retriable SchemaError when the registry stays unreachable, instead of dead-lettering', async () => {
    const reg = new ConfluentSchemaRegistry({ url: 'http://127.0.0.1:9' });
    const err = await fetchWriterSchemas(reg, [framed(7)], { retryForMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SchemaError);
    expect((err as SchemaError).retriable).toBe(true);
    expect((err as SchemaError).message).toMatch(/cannot look up schema id 7 .*cannot be reached/);
  });
});

describe('ConfluentSchemaRegistry.register', () => {
  /** A registry recording its requests; POST /subjects/<s>/versions answers `post`. */
  async function recordingRegistry(post: [number, unknown]): Promise<{ url: string; requests: string[] }> {
    const requests: string[] = [];
    server = createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      const [status, body] = req.method === 'POST' ? post : [200, { compatibilityLevel: 'FULL_TRANSITIVE' }];
      res.writeHead(status, { 'content-type': 'application/vnd.schemaregistry.v1+json' });
      res.end(JSON.stringify(body));
    });
    await new Promise<void>((resolve) => (server as Server).listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/apis/ccompat/v7/`, requests };
  }

  it("registers into a subject whatever its compatibility level, and never changes the subject's config", async () => {
    const { url, requests } = await recordingRegistry([200, { id: 42 }]);
    const reg = new ConfluentSchemaRegistry({ url, username: 'sr-user', password: 'pw' });
    expect(await reg.register('samples-value', schemaJson('LabeledSample'))).toBe(42);
    expect(requests).toEqual(['POST /apis/ccompat/v7/subjects/samples-value/versions']);
    expect(reg.cached(42)).toBeDefined();
  });

  it('says so when the registry refuses the schema as incompatible (409)', async () => {
    const { url } = await recordingRegistry([409, { error_code: 409, message: 'Schema being registered is incompatible with an earlier schema' }]);
    const err = await new ConfluentSchemaRegistry({ url }).register('samples-value', schemaJson('LabeledSample')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SchemaError);
    expect((err as SchemaError).message).toMatch(/subject "samples-value".*HTTP 409.*incompatible with an earlier schema/);
  });
});
