import { errorMessage, LogError, UsageError } from '../engine/errors.js';
import type { LogAccess, TopicSummary } from './embedded.js';

/** The topic API of a running engine (`run` holds the embedded log; the CLI goes through its HTTP port). */
export function httpAccess(baseUrl: string): LogAccess {
  const call = async <T>(path: string, init?: RequestInit): Promise<T> => {
    const res = await fetch(`${baseUrl}${path}`, init);
    const body = (await res.json()) as T & { error?: string };
    if (!res.ok) throw new UsageError(`the running engine at ${baseUrl} answered ${res.status}: ${body.error ?? JSON.stringify(body)}`);
    return body;
  };
  return {
    produce: async (topic, text, options = {}) => {
      let before: number[];
      try {
        before = (await call<TopicSummary[]>('/topics')).find((t) => t.topic === topic)?.endOffsets ?? [];
      } catch (err) {
        if (err instanceof UsageError) throw err;
        throw new LogError(`the running engine at ${baseUrl} did not answer (${errorMessage(err)}): nothing was sent, nothing appended; start the engine again (or stop it for good so that produce writes to the data dir directly) and re-run`, { cause: err, retriable: true });
      }
      const path = `/topics/${encodeURIComponent(topic)}/records?keyField=${encodeURIComponent(options.keyField ?? 'requestId')}${options.createPartitions ? `&partitions=${options.createPartitions}` : ''}`;
      try {
        return await call<{ appended: number }>(path, { method: 'POST', body: text });
      } catch (err) {
        if (err instanceof UsageError) throw err;
        throw connectionLost(baseUrl, topic, before, err);
      }
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

/**
 * The engine went away (crash, stop) before answering a produce. The engine appends the records of
 * one request in one atomic write once it has read the whole request, and answers right after: a cut
 * connection almost always means nothing was appended, and the end offsets taken before say for sure.
 */
function connectionLost(baseUrl: string, topic: string, endOffsetsBefore: number[], cause: unknown): LogError {
  const offsets = endOffsetsBefore.length === 0 ? `did not exist` : `ended at offset(s) ${endOffsetsBefore.join(', ')} (per partition)`;
  return new LogError(
    `the connection to the running engine at ${baseUrl} broke before it answered (${errorMessage(cause)}; the engine stopped or crashed). ` +
      `Nothing was appended unless the engine wrote the whole batch in the instant before it went away: a produce is appended all or nothing, in one write once the engine has read the whole request, and confirmed right after. ` +
      `Re-running the same produce is safe once the engine (or no engine) holds the data dir again; to check first, "${topic}" ${offsets} before this produce: ` +
      `\`sampleloop inspect\` shows the same end offsets when nothing was appended.`,
    { cause, retriable: true },
  );
}
