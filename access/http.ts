import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { errorMessage, LogError, UsageError } from '../engine/errors.js';
import type { LogAccess, TopicSummary } from './embedded.js';

/**
 * One request to the engine's HTTP API with node:http (not `fetch`: loading undici costs a short-lived
 * CLI command ~100 ms). Resolves to the status and the body parsed as JSON.
 */
export function httpJson(url: string, init: { method?: string; body?: string; timeoutMs?: number; headers?: Record<string, string> } = {}): Promise<{ status: number; body: unknown }> {
  const request = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method ?? 'GET', ...(init.headers ? { headers: init.headers } : {}), ...(init.timeoutMs !== undefined ? { timeout: init.timeoutMs } : {}) }, (res) => {
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
export function httpAccess(baseUrl: string, options: { produceChunkChars?: number; token?: string } = {}): LogAccess {
  const headers = options.token ? { authorization: `Bearer ${options.token}` } : undefined;
  const call = async <T>(path: string, init?: { method: string; body: string }): Promise<T> => {
    const { status, body } = await httpJson(`${baseUrl}${path}`, { ...init, ...(headers ? { headers } : {}) });
    if (status < 200 || status >= 300) {
      const error = (body as { error?: string } | null)?.error;
      throw new UsageError(`the running engine at ${baseUrl} answered ${status}: ${error ?? JSON.stringify(body)}`);
    }
    return body as T;
  };
  return {
    produce: async (topic, text, produceOptions = {}) => {
      let before: number[];
      try {
        before = (await call<TopicSummary[]>('/topics')).find((t) => t.topic === topic)?.endOffsets ?? [];
      } catch (err) {
        if (err instanceof UsageError) throw err;
        const before = produceOptions.appendedBefore ?? 0;
        const done = before === 0 ? 'nothing was sent, nothing appended' : `the first ${before} record(s) were appended and confirmed, nothing after them`;
        const rerun = before === 0 ? 're-run' : `re-run with only the lines after the first ${before}`;
        throw new LogError(`the running engine at ${baseUrl} did not answer (${errorMessage(err)}): ${done}; start the engine again (or stop it for good so that produce writes to the data dir directly) and ${rerun}`, { cause: err, retriable: true });
      }
      const path = `/topics/${encodeURIComponent(topic)}/records?keyField=${encodeURIComponent(produceOptions.keyField ?? 'requestId')}${produceOptions.createPartitions ? `&partitions=${produceOptions.createPartitions}` : ''}`;
      let appended = 0;
      for (const chunk of lineChunks(text, options.produceChunkChars ?? PRODUCE_CHUNK_CHARS)) {
        try {
          appended += (await call<{ appended: number }>(path, { method: 'POST', body: chunk })).appended;
        } catch (err) {
          if (err instanceof UsageError) throw err;
          throw connectionLost(baseUrl, topic, before, (produceOptions.appendedBefore ?? 0) + appended, err);
        }
      }
      return { appended };
    },
    read: (topic, readOptions = {}) => {
      const q = new URLSearchParams();
      if (readOptions.from !== undefined) q.set('from', String(readOptions.from));
      if (readOptions.partition !== undefined) q.set('partition', String(readOptions.partition));
      if (readOptions.max !== undefined) q.set('max', String(readOptions.max));
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

/**
 * The engine went away (crash, stop) before answering a produce. The engine appends the records of
 * one request (a piece of at most PRODUCE_CHUNK_CHARS) in one atomic write once it has read the whole
 * request, and answers right after: a cut connection almost always means that piece was not
 * appended, and the end offsets taken before say for sure.
 */
function connectionLost(baseUrl: string, topic: string, endOffsetsBefore: number[], appendedBefore: number, cause: unknown): LogError {
  const offsets = endOffsetsBefore.length === 0 ? `did not exist` : `ended at offset(s) ${endOffsetsBefore.join(', ')} (per partition)`;
  const earlier =
    appendedBefore === 0
      ? 'Nothing was appended unless the engine wrote the whole batch in the instant before it went away: '
      : `The first ${appendedBefore} record(s) were appended and confirmed (large inputs go in pieces, each appended all or nothing); of the rest nothing was appended unless the engine wrote the whole piece in the instant before it went away: `;
  const rerun =
    appendedBefore === 0
      ? 'Re-running the same produce is safe once the engine (or no engine) holds the data dir again'
      : `Re-run with only the lines after the first ${appendedBefore} (re-running all of them appends those again) once the engine (or no engine) holds the data dir again`;
  return new LogError(
    `the connection to the running engine at ${baseUrl} broke before it answered (${errorMessage(cause)}; the engine stopped or crashed). ` +
      earlier +
      `a produce request is appended all or nothing, in one write once the engine has read the whole request, and confirmed right after. ` +
      `${rerun}; to check first, "${topic}" ${offsets} before this produce: \`sampleloop inspect\` shows the end offsets.`,
    { cause, retriable: true },
  );
}
