/**
 * Liveness after a lost assignment (issue 11 part 4): the broker is down longer than the session
 * timeout, so every member's assignment is lost, once while the instances are idle and once while
 * records are in flight. Afterwards the group's input partitions must all be owned again within
 * session.timeout.ms + a few seconds of the broker's return, /healthz-level health must say so, and
 * every expected output must be there (own broker, so the shared one stays up).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { EngineMetrics } from '../../engine/metrics.js';
import { kafkaAvailable, startLocalKafka, type LocalKafka } from './harness.js';
import {
  canonicalSteps,
  createTestApp,
  differences,
  historyByKey,
  InputDriver,
  kafkaEndpoints,
  otherOutputDifferences,
  readKafkaOutputs,
  runEmbedded,
  startInProcess,
  testTraffic,
  waitUntil,
  type InProcessApp,
  type TestApp,
} from './helpers.js';

const endpoints = kafkaEndpoints();
const PARTITIONS = 4;
const SESSION_TIMEOUT_MS = 6_000;
/** The promise: full ownership within the session timeout plus a few seconds once the broker is back. */
const OWNERSHIP_DEADLINE_MS = SESSION_TIMEOUT_MS + 10_000;

function owned(apps: readonly InProcessApp[]): number[] {
  return apps.map((a) => a.app.runtime.partitionsOwned());
}

function lostAssignments(app: InProcessApp, from: number): number {
  return app.logs.slice(from).filter((l) => l.msg === 'partitions revoked' && l.lost === true).length;
}

describe.skipIf(endpoints === null || !kafkaAvailable())('Kafka mode: liveness after a lost assignment', () => {
  let local: LocalKafka | undefined;
  const apps: TestApp[] = [];
  afterAll(async () => {
    await local?.stop();
    apps.forEach((a) => a.cleanup());
  }, 120_000);

  it('two exactly-once instances own every input partition again after the broker was down longer than the session (idle and under load), and lose nothing', async () => {
    local = await startLocalKafka();
    const own = { bootstrap: local.bootstrap, registryUrl: local.registryUrl };
    const steps = canonicalSteps(testTraffic(611, 600), 100);
    const expected = await runEmbedded(steps, PARTITIONS);
    const test = createTestApp(own, 'liveness', PARTITIONS);
    apps.push(test);
    const librdkafka = { 'session.timeout.ms': SESSION_TIMEOUT_MS, 'heartbeat.interval.ms': 1_000 };
    const metrics = [new EngineMetrics(), new EngineMetrics()];
    const instances = [
      await startInProcess(test.config({ instanceId: 'a', guarantee: 'exactly_once', commitIntervalMs: 500, librdkafka }), metrics[0]),
      await startInProcess(test.config({ instanceId: 'b', guarantee: 'exactly_once', commitIntervalMs: 500, librdkafka }), metrics[1]),
    ];
    const driver = await InputDriver.connect({ bootstrap: own.bootstrap, group: test.run, topics: test.topics, partitions: PARTITIONS, stepTimeoutMs: 180_000 });
    const failed = Promise.race(instances.map((i) => i.failed));
    const fullOwnership = async (what: string): Promise<void> => {
      try {
        await Promise.race([waitUntil(() => owned(instances).reduce((a, b) => a + b, 0) === PARTITIONS && owned(instances).every((n) => n > 0), OWNERSHIP_DEADLINE_MS, `${what}: every input partition owned again`), failed]);
      } catch (err) {
        const recent = instances.map((a, i) => `instance ${i} owns ${owned(instances)[i]}; its last log lines:\n${a.logs.slice(-15).map((l) => `  ${JSON.stringify(l)}`).join('\n')}`);
        throw new Error(`${(err as Error).message}\n${recent.join('\n')}`, { cause: err });
      }
    };
    const step = async (i: number): Promise<void> => {
      await driver.produce(steps[i]!);
      await Promise.race([driver.waitCommitted(), failed]);
    };
    const outage = Math.floor(steps.length / 3);
    const loaded = Math.floor((2 * steps.length) / 3);
    try {
      await fullOwnership('at start');
      for (let i = 0; i < outage; i++) await step(i);

      // Idle: nothing in flight while the broker is away longer than the session.
      const mark = instances.map((a) => a.logs.length);
      await local.restartBroker(SESSION_TIMEOUT_MS + 4_000);
      await fullOwnership('after an idle outage');
      expect(instances.map((a, i) => lostAssignments(a, mark[i]!)).some((n) => n > 0), 'the idle outage made the instances lose their assignment').toBe(true);
      for (const a of instances) expect(a.app.runtime.health().healthy).toBe(true);

      for (let i = outage; i < loaded; i++) await step(i);

      // Under load: a step is fetched, processed or being committed when the broker goes away.
      await driver.produce(steps[loaded]!);
      await local.restartBroker(SESSION_TIMEOUT_MS + 4_000);
      await fullOwnership('after an outage under load');
      // Not asserted: under load the outage does not always end the sessions (seen in 2 of 4 runs: the
      // instances rode it out). The idle outage above always does; here ownership and the outputs must hold either way.
      await Promise.race([driver.waitCommitted(), failed]);
      for (let i = loaded + 1; i < steps.length; i++) await step(i);
      for (const a of instances) expect(a.app.runtime.health().healthy).toBe(true);
      const gauge = await Promise.all(metrics.map(async (m) => (await m.partitionsOwned.get()).values[0]?.value ?? -1));
      expect(gauge.reduce((a, b) => a + b, 0)).toBe(PARTITIONS);
    } finally {
      await driver.close();
      for (const a of instances) await a.stop();
    }

    const actual = await readKafkaOutputs(own, test.topics, PARTITIONS);
    expect(differences(historyByKey(actual.samples), historyByKey(expected.samples))).toBe('');
    expect(otherOutputDifferences(actual, expected)).toBe('');
  }, 600_000);
});
