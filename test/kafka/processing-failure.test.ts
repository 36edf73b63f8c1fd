/**
 * A processing failure that stops a Kafka instance: the half-done step (the record that threw and the
 * rest of its batch) is never committed, so the instance that takes over processes it again. Both
 * guarantees. A plain topology over the runtime, so the failure can be forced where the engine's own
 * topologies would dead-letter it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KafkaRuntime } from '../../engine/kafka/runtime.js';
import { silentLogger } from '../../engine/logger.js';
import { EngineMetrics } from '../../engine/metrics.js';
import { StreamsBuilder } from '../../engine/topology.js';
import { connectProducer, disconnect, kafkaEndpoints, produceKeyed, readTopic, uniqueRunName } from './helpers.js';

const endpoints = kafkaEndpoints();
const T0 = Date.UTC(2026, 0, 5, 9);

function runtimeFor(bootstrap: string, run: string, guarantee: 'at_least_once' | 'exactly_once', stateDir: string, failOn: string | null): KafkaRuntime {
  const builder = new StreamsBuilder('upper');
  builder
    .stream(`${run}-in`)
    .process<string>('upper', () => {
      let forward: ((value: string) => void) | undefined;
      return {
        init(ctx) {
          forward = (value) => ctx.forward({ key: null, value, timestamp: T0, headers: {} });
        },
        process(record) {
          const text = record.value?.toString('utf8') ?? '';
          if (text === failOn) throw new Error('simulated processor failure');
          forward?.(text.toUpperCase());
        },
      };
    })
    .to(`${run}-out`, (r) => ({ key: null, value: Buffer.from(r.value, 'utf8') }));
  return new KafkaRuntime([builder.build()], {
    applicationId: run,
    instanceId: 'only',
    guarantee,
    librdkafka: { 'bootstrap.servers': bootstrap, 'log_level': 3 },
    stateDir,
    replicationFactor: -1,
    defaultPartitions: 1,
    commitIntervalMs: 100,
    punctuateIntervalMs: 1_000,
    pollRecords: 100,
    logger: silentLogger(),
    metrics: new EngineMetrics(),
    deadLetterTopic: `${run}-dead-letters`,
    // The dead letter of the failure fails too: the error escapes the task, as a fatal one would.
    encodeDeadLetter: () => {
      throw new Error('simulated dead-letter failure');
    },
  });
}

async function runUntil(runtime: KafkaRuntime, done: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const stop = new AbortController();
  const running = runtime.run(stop.signal);
  const deadline = Date.now() + timeoutMs;
  try {
    while (!(await done())) {
      if (Date.now() > deadline) throw new Error('timed out');
      await Promise.race([running, new Promise((resolve) => setTimeout(resolve, 250))]);
    }
  } finally {
    stop.abort();
    await running.catch(() => undefined);
    await runtime.close();
  }
}

describe.skipIf(endpoints === null)('Kafka mode: a processing failure that stops the instance', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  for (const guarantee of ['at_least_once', 'exactly_once'] as const) {
    it(`${guarantee}: commits nothing of the failed step; the next instance processes the record again`, async () => {
      const { bootstrap } = endpoints!;
      const run = uniqueRunName(`fail-${guarantee === 'exactly_once' ? 'eos' : 'alos'}`);
      const dir = mkdtempSync(join(tmpdir(), 'sampleloop-fail-'));
      dirs.push(dir);

      const first = runtimeFor(bootstrap, run, guarantee, join(dir, 'a'), 'boom');
      await first.start();
      const producer = await connectProducer(bootstrap);
      try {
        await produceKeyed(producer, `${run}-in`, 1, ['a', 'boom', 'c'].map((v) => ({ key: null, value: Buffer.from(v), timestamp: T0 })));
      } finally {
        await disconnect(producer);
      }
      const stop = new AbortController();
      await expect(first.run(stop.signal)).rejects.toThrow('simulated');
      await first.close();

      // The failure is gone (a fixed deployment): the record that failed is processed, nothing is skipped.
      const second = runtimeFor(bootstrap, run, guarantee, join(dir, 'b'), null);
      await second.start();
      const outputs = async (): Promise<string[]> =>
        (await readTopic(bootstrap, `${run}-out`, 1, { readCommitted: true })).map((m) => m.value?.toString('utf8') ?? '');
      await runUntil(second, async () => (await outputs()).includes('C'));
      const values = await outputs();
      expect(new Set(values)).toEqual(new Set(['A', 'BOOM', 'C']));
      if (guarantee === 'exactly_once') expect(values).toEqual(['A', 'BOOM', 'C']);
    });
  }
});
