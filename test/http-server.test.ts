/**
 * The one HTTP server (app/http.ts) over real HTTP on a real embedded log: the topic API's routes,
 * body limits (a 300 MB POST is refused while it streams, not appended), validation of query strings,
 * plugins of the application registered beside the built-in routes, and the CLI's chunked produce.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpServer, type HttpServer } from '../app/http.js';
import { directAccess } from '../access/embedded.js';
import { httpAccess, lineChunks } from '../access/http.js';
import { EmbeddedLog } from '../engine/embedded/log.js';
import { EngineMetrics } from '../engine/metrics.js';
import { silentLogger } from '../engine/logger.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';

describe('the HTTP server', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sampleloop-http-'));
  let log: EmbeddedLog;
  let server: HttpServer;
  let url: string;

  beforeAll(async () => {
    log = await EmbeddedLog.open(join(dir, 'log'));
    const access = directAccess(log, new LocalSchemaRegistry());
    server = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      metrics: new EngineMetrics({}),
      logger: silentLogger(),
      limits: { bodyLimitBytes: 64 * 1024, topicsBodyLimitBytes: 1024 * 1024 },
      routes: { health: () => ({ healthy: true, details: { mode: 'test' } }), log: access },
      plugins: [
        async (app) => {
          app.post<{ Body: { n: number } }>('/plugin/echo', { schema: { body: { type: 'object', required: ['n'], additionalProperties: false, properties: { n: { type: 'integer' } } } } }, (req) => ({ twice: req.body.n * 2 }));
        },
      ],
    });
    url = `http://127.0.0.1:${server.port}`;
  });

  afterAll(async () => {
    await server.close();
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('appends JSON lines unchanged (a malformed line too) and reads them back', async () => {
    const res = await fetch(`${url}/topics/feedback/records?keyField=requestId`, { method: 'POST', body: '{"requestId":"a","label":"x"}\n{"requestId":\n' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ appended: 2 });
    const read = (await (await fetch(`${url}/topics/feedback/records?from=0&max=5`)).json()) as Array<{ key: string | null; value: unknown }>;
    expect(read.map((r) => [r.key, r.value])).toEqual([
      ['a', { requestId: 'a', label: 'x' }],
      [null, { text: '{"requestId":' }],
    ]);
    const topics = (await (await fetch(`${url}/topics`)).json()) as Array<{ topic: string; records: number }>;
    expect(topics).toEqual([expect.objectContaining({ topic: 'feedback', records: 2 })]);
  });

  it('answers 400 naming the parameter for a bad query string, and 400 with the log\'s reason for an unknown topic', async () => {
    const bad = await fetch(`${url}/topics/feedback/records?from=abc`);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: 'querystring/from must be integer' });
    const unknown = await fetch(`${url}/topics/nothing/records`);
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { error: string }).error).toMatch(/^unknown topic "nothing"/);
    const none = await fetch(`${url}/nowhere`);
    expect(none.status).toBe(404);
  });

  it('refuses a 300 MB streamed POST to /topics/predictions/records with 413 and appends nothing', async () => {
    const before = log.topic('predictions') ? log.count('predictions', 0) : 0;
    const { status, sent } = await streamPost(`${url}/topics/predictions/records`, 300 * 1024 * 1024);
    expect(status).toBe(413);
    // the server stopped it near the limit, long before 300 MB went over the wire
    expect(sent).toBeLessThan(64 * 1024 * 1024);
    expect(log.topic('predictions') ? log.count('predictions', 0) : 0).toBe(before);
  });

  it('refuses a body over the general limit on a plugin route with 413, validates plugin bodies', async () => {
    const big = await fetch(`${url}/plugin/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ n: 1, pad: 'x'.repeat(70 * 1024) }) });
    expect(big.status).toBe(413);
    const ok = await fetch(`${url}/plugin/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":21}' });
    expect(await ok.json()).toEqual({ twice: 42 });
    const extra = await fetch(`${url}/plugin/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":1,"m":2}' });
    expect(extra.status).toBe(400);
    expect(await extra.json()).toEqual({ error: 'body must NOT have additional properties' });
    const malformed = await fetch(`${url}/plugin/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":' });
    expect(malformed.status).toBe(400);
  });

  it('the CLI\'s produce through the running engine sends more than the body limit in pieces', async () => {
    const line = (i: number): string => JSON.stringify({ requestId: `r${i}`, pad: 'y'.repeat(1000) });
    const text = Array.from({ length: 3000 }, (_, i) => line(i)).join('\n'); // ~3 MB, three times the limit
    expect(lineChunks(text, 1024 * 1024).every((c) => c.length <= 1024 * 1024)).toBe(true);
    expect(lineChunks(text, 1024 * 1024).join('')).toBe(text);
    const result = await httpAccess(url, { produceChunkChars: 256 * 1024 }).produce('bulk', text);
    expect(result).toEqual({ appended: 3000 });
    const read = await directAccess(log, new LocalSchemaRegistry()).read('bulk');
    expect(read.map((r) => r.key)).toEqual(Array.from({ length: 3000 }, (_, i) => `r${i}`));
  });

  it('serves /healthz and /metrics', async () => {
    expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: 'ok', mode: 'test' });
    const metrics = await fetch(`${url}/metrics`);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
  });
});

/** POSTs `total` bytes in 1 MiB chunks without a content-length; resolves with the status and the bytes written before it came. */
function streamPost(target: string, total: number): Promise<{ status: number; sent: number }> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    const chunk = Buffer.alloc(1024 * 1024, 'a');
    const req = request(target, { method: 'POST', headers: { 'content-type': 'text/plain' } }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, sent });
      req.destroy();
    });
    req.on('error', (err) => (sent > 0 ? undefined : reject(err)));
    const write = (): void => {
      while (sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', write);
          return;
        }
      }
      req.end();
    };
    write();
  });
}
