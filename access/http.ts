import { request } from 'node:http';
import { UsageError } from '../engine/errors.js';
import type { LogAccess } from './embedded.js';

/**
 * One request to the engine's HTTP API with node:http (not `fetch`: loading undici costs a short-lived
 * CLI command ~100 ms). Resolves to the status and the body parsed as JSON.
 */
export function httpJson(url: string, init: { method?: string; body?: string; timeoutMs?: number } = {}): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method ?? 'GET', ...(init.timeoutMs !== undefined ? { timeout: init.timeoutMs } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, body: text.length > 0 ? (JSON.parse(text) as unknown) : null });
        } catch {
          resolve({ status: res.statusCode ?? 0, body: { error: text } });
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${init.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(init.body);
  });
}

/** The topic API of a running engine (`run` holds the embedded log; the CLI goes through its HTTP port). */
export function httpAccess(baseUrl: string): LogAccess {
  const call = async <T>(path: string, init?: { method: string; body: string }): Promise<T> => {
    const { status, body } = await httpJson(`${baseUrl}${path}`, init);
    if (status < 200 || status >= 300) {
      const error = (body as { error?: string } | null)?.error;
      throw new UsageError(`the running engine at ${baseUrl} answered ${status}: ${error ?? JSON.stringify(body)}`);
    }
    return body as T;
  };
  return {
    produce: (topic, text, options = {}) =>
      call(`/topics/${encodeURIComponent(topic)}/records?keyField=${encodeURIComponent(options.keyField ?? 'requestId')}${options.createPartitions ? `&partitions=${options.createPartitions}` : ''}`, { method: 'POST', body: text }),
    read: (topic, options = {}) => {
      const q = new URLSearchParams();
      if (options.from !== undefined) q.set('from', String(options.from));
      if (options.partition !== undefined) q.set('partition', String(options.partition));
      if (options.max !== undefined) q.set('max', String(options.max));
      return call(`/topics/${encodeURIComponent(topic)}/records?${q.toString()}`);
    },
    topics: () => call('/topics'),
    stores: () => call('/stores'),
  };
}
