import { UsageError } from '../engine/errors.js';
import type { LogAccess } from './embedded.js';

/** The topic API of a running engine (`run` holds the embedded log; the CLI goes through its HTTP port). */
export function httpAccess(baseUrl: string, options: { produceChunkChars?: number } = {}): LogAccess {
  const call = async <T>(path: string, init?: RequestInit): Promise<T> => {
    const res = await fetch(`${baseUrl}${path}`, init);
    const body = (await res.json()) as T & { error?: string };
    if (!res.ok) throw new UsageError(`the running engine at ${baseUrl} answered ${res.status}: ${body.error ?? JSON.stringify(body)}`);
    return body;
  };
  return {
    produce: async (topic, text, produceOptions = {}) => {
      const path = `/topics/${encodeURIComponent(topic)}/records?keyField=${encodeURIComponent(produceOptions.keyField ?? 'requestId')}${produceOptions.createPartitions ? `&partitions=${produceOptions.createPartitions}` : ''}`;
      let appended = 0;
      for (const chunk of lineChunks(text, options.produceChunkChars ?? PRODUCE_CHUNK_CHARS)) appended += (await call<{ appended: number }>(path, { method: 'POST', body: chunk })).appended;
      return { appended };
    },
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

/** Characters of JSON lines per POST: well below the engine's body limit for the topic API (http.topicsBodyLimitBytes, 32 MiB by default). */
export const PRODUCE_CHUNK_CHARS = 4 * 1024 * 1024;

/** Splits JSON lines into pieces of about `maxChars` characters at line ends (a longer line goes alone). */
export function lineChunks(text: string, maxChars: number): string[] {
  if (text.length <= maxChars) return [text];
  const chunks: string[] = [];
  let start = 0;
  while (start < text.length) {
    let end = Math.min(text.length, start + maxChars);
    if (end < text.length) {
      const newline = text.lastIndexOf('\n', end);
      end = newline > start ? newline + 1 : (text.indexOf('\n', end) + 1 || text.length);
    }
    chunks.push(text.slice(start, end));
    start = end;
  }
  return chunks;
}
