import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { LogAccess } from '../access/embedded.js';

const topicParams = {
  type: 'object',
  required: ['topic'],
  properties: { topic: { type: 'string', pattern: '^[A-Za-z0-9._-]+$' } },
} as const;

/**
 * The embedded topic API the CLI uses while `run` holds the log: GET /topics, GET /stores,
 * POST /topics/<topic>/records (JSON lines, appended as they are: a malformed line reaches the engine
 * and its dead-letter topic) and GET /topics/<topic>/records.
 */
export function topicRoutes(log: LogAccess, bodyLimitBytes: number): FastifyPluginAsync {
  return async (app) => {
    // JSON lines under any content type (the CLI sends text/plain): the body is kept as text.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: bodyLimitBytes }, (_request, body, done) => done(null, body));

    app.get('/topics', () => log.topics());
    app.get('/stores', () => log.stores());
    app.post<{ Params: { topic: string }; Querystring: { keyField?: string; partitions?: number } }>(
      '/topics/:topic/records',
      {
        bodyLimit: bodyLimitBytes,
        schema: {
          params: topicParams,
          querystring: {
            type: 'object',
            properties: { keyField: { type: 'string', minLength: 1 }, partitions: { type: 'integer', minimum: 1, maximum: 1024 } },
          },
        },
      },
      (request, reply) =>
        answer(reply, () => {
          const { keyField, partitions } = request.query;
          const body = typeof request.body === 'string' ? request.body : '';
          return log.produce(request.params.topic, body, { keyField: keyField ?? 'requestId', ...(partitions ? { createPartitions: partitions } : {}) });
        }),
    );
    app.get<{ Params: { topic: string }; Querystring: { from?: number; partition?: number; max?: number } }>(
      '/topics/:topic/records',
      {
        schema: {
          params: topicParams,
          querystring: {
            type: 'object',
            properties: { from: { type: 'integer', minimum: 0 }, partition: { type: 'integer', minimum: 0 }, max: { type: 'integer', minimum: 1 } },
          },
        },
      },
      (request, reply) => {
        const { from, partition, max } = request.query;
        return answer(reply, () =>
          log.read(request.params.topic, { ...(from !== undefined ? { from } : {}), ...(partition !== undefined ? { partition } : {}), ...(max !== undefined ? { max } : {}) }),
        );
      },
    );
  };
}

/** A failure of the log (unknown topic, no such partition) is the caller's mistake: 400 with its message. */
async function answer(reply: FastifyReply, fn: () => Promise<unknown>): Promise<unknown> {
  try {
    return await fn();
  } catch (err) {
    return reply.status(400).send({ error: err instanceof Error ? err.message : String(err) });
  }
}
