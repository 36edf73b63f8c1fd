/**
 * Recovery against the real broker: local state deleted between runs (rebuilt from the changelog
 * topics), and a broker restart in the middle of the stream (own broker, so the shared one stays up).
 */
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { EngineMetrics } from '../../engine/metrics.js';
import type { RefInput } from '../reference/join-model.js';
import { kafkaAvailable, startLocalKafka, type LocalKafka } from './harness.js';
import {
  atLeastOnceDifferences,
  canonicalSteps,
  createTestApp,
  differences,
  finalByKey,
  historyByKey,
  InputDriver,
  kafkaEndpoints,
  otherOutputDifferences,
  readKafkaOutputs,
  runEmbedded,
  startInProcess,
  testTraffic,
  type Step,
  type TestApp,
} from './helpers.js';

const endpoints = kafkaEndpoints();
const PARTITIONS = 4;

function requestIds(steps: readonly Step[], kind: RefInput['kind']): Set<string> {
  return new Set(steps.flatMap((s) => s.inputs.filter((i) => i.kind === kind).map((i) => i.value.requestId)));
}

describe.skipIf(endpoints === null)('Kafka mode: state deleted between runs', () => {
  const apps: TestApp[] = [];
  afterAll(() => apps.forEach((a) => a.cleanup()));

  it('restores the state from the changelogs: predictions before and feedback after the restart still join, windows still close', async () => {
    const kafka = endpoints!;
    const steps = canonicalSteps(testTraffic(404, 1_200), 150);
    const expected = await runEmbedded(steps, PARTITIONS);
    const test = createTestApp(kafka, 'restore', PARTITIONS);
    apps.push(test);
    const config = test.config({ instanceId: 'only' });
    const stateDir = test.stateDir('only');
    const half = Math.floor(steps.length / 2);
    const driver = await InputDriver.connect({ bootstrap: kafka.bootstrap, group: test.run, topics: test.topics, partitions: PARTITIONS });
    let restored = 0;
    try {
      const first = await startInProcess(config);
      try {
        await Promise.race([driver.drive(steps.slice(0, half)), first.failed]);
      } finally {
        await first.stop();
      }
      rmSync(stateDir, { recursive: true, force: true });

      const metrics = new EngineMetrics();
      const second = await startInProcess(config, metrics);
      try {
        await Promise.race([driver.drive(steps.slice(half)), second.failed]);
      } finally {
        await second.stop();
      }
      restored = (await metrics.restoredRecords.get()).values.reduce((sum, v) => sum + v.value, 0);
    } finally {
      await driver.close();
    }
    expect(restored).toBeGreaterThan(0);

    const actual = await readKafkaOutputs(kafka, test.topics, PARTITIONS);
    expect(differences(finalByKey(actual.samples), finalByKey(expected.samples))).toBe('');
    expect(differences(historyByKey(actual.samples), historyByKey(expected.samples))).toBe('');
    expect(otherOutputDifferences(actual, expected)).toBe('');

    // The point of the test: samples whose prediction came before the restart and feedback after it,
    // and predictions from before the restart whose window closed after it (unmatched).
    const before = requestIds(steps.slice(0, half), 'prediction');
    const feedbackAfter = requestIds(steps.slice(half), 'feedback');
    const joinedAcross = [...finalByKey(actual.samples).keys()].filter((id) => before.has(id) && feedbackAfter.has(id));
    expect(joinedAcross.length).toBeGreaterThan(20);
    const unmatchedFromBefore = [...actual.others.unmatched.keys()].filter((id) => before.has(id));
    expect(unmatchedFromBefore.length).toBeGreaterThan(20);
  });
});

describe.skipIf(endpoints === null || !kafkaAvailable())('Kafka mode: broker restart mid-stream', () => {
  let local: LocalKafka | undefined;
  const apps: TestApp[] = [];
  afterAll(async () => {
    await local?.stop();
    apps.forEach((a) => a.cleanup());
  }, 120_000);

  it('the application recovers by itself and loses nothing (at-least-once)', async () => {
    // Its own broker + registry: restarting the shared one would disturb the other test files.
    local = await startLocalKafka();
    const own = { bootstrap: local.bootstrap, registryUrl: local.registryUrl };
    const steps = canonicalSteps(testTraffic(505, 800), 100);
    const expected = await runEmbedded(steps, PARTITIONS);
    const test = createTestApp(own, 'broker-restart', PARTITIONS);
    apps.push(test);
    const app = await startInProcess(test.config({ instanceId: 'only' }));
    const driver = await InputDriver.connect({ bootstrap: own.bootstrap, group: test.run, topics: test.topics, partitions: PARTITIONS, stepTimeoutMs: 180_000 });
    const restartAt = Math.floor(steps.length / 3);
    let restartMs = 0;
    try {
      const drive = async (): Promise<void> => {
        for (let i = 0; i < steps.length; i++) {
          await driver.produce(steps[i]!);
          if (i === restartAt) {
            // The step is in flight (fetched, processed, committed: any of these) when the broker goes away.
            const started = Date.now();
            await local!.restartBroker();
            restartMs = Date.now() - started;
          }
          await driver.waitCommitted();
        }
      };
      await Promise.race([drive(), app.failed]);
    } finally {
      await driver.close();
      await app.stop();
    }
    expect(restartMs).toBeGreaterThan(0);

    const actual = await readKafkaOutputs(own, test.topics, PARTITIONS);
    expect(differences(finalByKey(actual.samples), finalByKey(expected.samples))).toBe('');
    expect(atLeastOnceDifferences(historyByKey(actual.samples), historyByKey(expected.samples))).toBe('');
  });
});
