/**
 * Scale-out against the real broker: instances in separate processes (test/fixtures/kafka-worker.mjs,
 * the compiled engine) share one consumer group.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  atLeastOnceDifferences,
  canonicalSteps,
  createTestApp,
  differences,
  duplicateCount,
  finalByKey,
  historyByKey,
  InputDriver,
  KafkaWorker,
  kafkaEndpoints,
  otherOutputDifferences,
  readKafkaOutputs,
  runEmbedded,
  testTraffic,
  waitUntil,
  type TestApp,
} from './helpers.js';

const endpoints = kafkaEndpoints();
const PARTITIONS = 4;
const ALL = [0, 1, 2, 3];

describe.skipIf(endpoints === null)('Kafka mode scale-out (two processes, one group)', () => {
  const apps: TestApp[] = [];
  let workers: KafkaWorker[] = [];
  afterEach(async () => {
    await Promise.all(workers.map((w) => w.kill()));
    workers = [];
  });
  afterAll(() => apps.forEach((a) => a.cleanup()));

  it('two instances split the partitions and together give exactly the samples of one instance', async () => {
    const kafka = endpoints!;
    const steps = canonicalSteps(testTraffic(202, 1_200), 200);
    const expected = await runEmbedded(steps, PARTITIONS);
    const test = createTestApp(kafka, 'scale', PARTITIONS);
    apps.push(test);
    const lead = test.topics.predictions;

    const a = KafkaWorker.start('a', test.config({ instanceId: 'a' }));
    workers.push(a);
    await a.running();
    const b = KafkaWorker.start('b', test.config({ instanceId: 'b' }));
    workers.push(b);
    await b.running();
    await waitUntil(
      () => a.heldPartitions(lead).length > 0 && b.heldPartitions(lead).length > 0 && [...a.heldPartitions(lead), ...b.heldPartitions(lead)].sort().join() === ALL.join(),
      60_000,
      'the group to split the partitions between a and b',
    );
    const split = { a: a.heldPartitions(lead), b: b.heldPartitions(lead) };

    const driver = await InputDriver.connect({ bootstrap: kafka.bootstrap, group: test.run, topics: test.topics, partitions: PARTITIONS });
    try {
      await driver.drive(steps);
    } finally {
      await driver.close();
    }
    // No rebalance happened while the traffic flowed: each kept its half.
    expect({ a: a.heldPartitions(lead), b: b.heldPartitions(lead) }).toEqual(split);
    expect(await a.stop()).toBe(0);
    expect(await b.stop()).toBe(0);

    const actual = await readKafkaOutputs(kafka, test.topics, PARTITIONS);
    expect(finalByKey(expected.samples).size).toBeGreaterThan(400);
    expect(differences(finalByKey(actual.samples), finalByKey(expected.samples))).toBe('');
    expect(differences(historyByKey(actual.samples), historyByKey(expected.samples))).toBe('');
    expect(otherOutputDifferences(actual, expected)).toBe('');
  });

  it('a rebalance 1 → 2 → 1 while traffic flows loses nothing (at-least-once)', async () => {
    const kafka = endpoints!;
    const steps = canonicalSteps(testTraffic(203, 1_500), 150);
    const expected = await runEmbedded(steps, PARTITIONS);
    const test = createTestApp(kafka, 'rebalance', PARTITIONS);
    apps.push(test);
    const lead = test.topics.predictions;

    const a = KafkaWorker.start('a', test.config({ instanceId: 'a' }));
    workers.push(a);
    await a.running();
    const joinAt = Math.floor(steps.length / 4);
    const leaveAt = Math.floor((2 * steps.length) / 3);
    let b: KafkaWorker | undefined;
    let bStopped: Promise<number | null> | undefined;
    let heldWhileTwo: { a: number[]; b: number[] } | undefined;

    const driver = await InputDriver.connect({ bootstrap: kafka.bootstrap, group: test.run, topics: test.topics, partitions: PARTITIONS, stepTimeoutMs: 90_000 });
    try {
      await driver.drive(steps, async (i) => {
        if (i === joinAt) {
          // 1 → 2: b joins; the next steps are produced while the group rebalances.
          b = KafkaWorker.start('b', test.config({ instanceId: 'b' }));
          workers.push(b);
        }
        if (i === leaveAt && b) {
          const joined = b;
          await joined.waitFor((l) => l.msg === 'partitions assigned', 60_000, 'an assignment');
          heldWhileTwo = { a: a.heldPartitions(lead), b: joined.heldPartitions(lead) };
          // 2 → 1: b leaves (SIGTERM: commit, close, leave the group) while the traffic goes on.
          bStopped = joined.stop();
        }
      });
    } finally {
      await driver.close();
    }
    expect(await bStopped).toBe(0);
    expect(heldWhileTwo?.a.length).toBeGreaterThan(0);
    expect(heldWhileTwo?.b.length).toBeGreaterThan(0);
    expect([...(heldWhileTwo?.a ?? []), ...(heldWhileTwo?.b ?? [])].sort()).toEqual(ALL);
    await waitUntil(() => a.heldPartitions(lead).join() === ALL.join(), 30_000, 'a to hold every partition again');
    expect(await a.stop()).toBe(0);

    const actual = await readKafkaOutputs(kafka, test.topics, PARTITIONS);
    expect(differences(finalByKey(actual.samples), finalByKey(expected.samples))).toBe('');
    expect(atLeastOnceDifferences(historyByKey(actual.samples), historyByKey(expected.samples))).toBe('');
    // Clean hand-overs commit before revoking: not even identical re-emissions are expected.
    expect(duplicateCount(historyByKey(actual.samples), historyByKey(expected.samples))).toBe(0);
    // Windows still close after tasks moved (their expiry index came back from the changelogs).
    expect(differences(actual.others.unmatched, expected.others.unmatched)).toBe('');
  });
});
