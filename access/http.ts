import { UsageError } from '../engine/errors.js';
import type { LogAccess } from './embedded.js';

/** The topic API of a running engine (`run` holds the embedded log; the CLI goes through its HTTP port). */
export function httpAccess(baseUrl: string): LogAccess {
  const call = async <T>(path: string, init?: RequestInit): Promise<T> => {
    const res = await fetch(`${baseUrl}${path}`, init);
    const body = (await res.json()) as T & { error?: string };
    if (!res.ok) throw new UsageError(`the running engine at ${baseUrl} answered ${res.status}: ${body.error ?? JSON.stringify(body)}`);
    return body;
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
