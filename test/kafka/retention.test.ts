/**
 * Side outputs of an old backlog survive the broker's time-based retention (issue 11 part 4):
 * unmatched, orphans, late, review and dead-letters carry event times as record timestamps; a
 * backlog 60 days old must not have them deleted by the default 7-day retention. Own broker with a
 * retention check every second, so a deletion would happen within the test.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { KafkaAdmin } from '../../engine/kafka/admin.js';
import { createLogger } from '../../engine/logger.js';
import type { RefInput } from '../reference/join-model.js';
import { kafkaAvailable, startLocalKafka, type LocalKafka } from './harness.js';
import {
  canonicalSteps,
  createTestApp,
  InputDriver,
  kafkaEndpoints,
  OTHER_OUTPUTS,
  otherOutputDifferences,
  readKafkaOutputs,
  readTopic,
  runEmbedded,
  startInProcess,
  testTraffic,
  type TestApp,
} from './helpers.js';

const endpoints = kafkaEndpoints();
const PARTITIONS = 2;
const DAY = 24 * 3600_000;

/** testTraffic starts two days ago: move it to start 60 days ago. */
function sixtyDaysOld(inputs: readonly RefInput[]): RefInput[] {
  const shift = -58 * DAY;
  return inputs.map((input) =>
    input.kind === 'prediction' ? { kind: 'prediction', value: { ...input.value, timestamp: input.value.timestamp + shift } } : { kind: 'feedback', value: { ...input.value, timestamp: input.value.timestamp + shift } },
  );
}

describe.skipIf(endpoints === null || !kafkaAvailable())('Kafka mode: side outputs of an old backlog and retention', () => {
  let local: LocalKafka | undefined;
  const apps: TestApp[] = [];
  afterAll(async () => {
    await local?.stop();
    apps.forEach((a) => a.cleanup());
  }, 120_000);

  it('unmatched, orphans, late, review and dead letters with 60-day-old event times are still there after several retention checks', async () => {
    local = await startLocalKafka({ brokerProperties: { 'log.retention.check.interval.ms': 1_000 } });
    const own = { bootstrap: local.bootstrap, registryUrl: local.registryUrl };
    const steps = canonicalSteps(sixtyDaysOld(testTraffic(707, 300)), 100);
    const oldest = Math.min(...steps.flatMap((s) => s.inputs.map((i) => i.value.timestamp)));
    expect(Date.now() - oldest).toBeGreaterThan(59 * DAY);
    const expected = await runEmbedded(steps, PARTITIONS);
    for (const kind of ['unmatched', 'orphans', 'late'] as const) expect(expected.others[kind].size, `the backlog yields ${kind}`).toBeGreaterThan(0);

    const test = createTestApp(own, 'retention', PARTITIONS);
    apps.push(test);
    // The input topics are the producers' (docs/kafka.md): kept forever here, so the broker does not delete the old backlog before it is read.
    const admin = new KafkaAdmin({ 'bootstrap.servers': own.bootstrap }, createLogger({ level: 'warn' }));
    try {
      await admin.ensureTopics([test.topics.predictions, test.topics.feedback].map((name) => ({ name, partitions: PARTITIONS, compact: false, keepForever: true })), 1);
    } finally {
      admin.close();
    }
    const app = await startInProcess(test.config({ instanceId: 'only' }));
    const driver = await InputDriver.connect({ bootstrap: own.bootstrap, group: test.run, topics: test.topics, partitions: PARTITIONS });
    try {
      await Promise.race([driver.drive(steps), app.failed]);
    } finally {
      await driver.close();
      await app.stop();
    }
    expect(otherOutputDifferences(await readKafkaOutputs(own, test.topics, PARTITIONS), expected)).toBe('');

    // Several retention checks later: a topic keeping the event times as timestamps has lost its records by now.
    await sleep(20_000);
    expect(otherOutputDifferences(await readKafkaOutputs(own, test.topics, PARTITIONS), expected)).toBe('');
    // The records are stamped when written (LogAppendTime), the event time stays in the value.
    for (const kind of OTHER_OUTPUTS) {
      for (const m of await readTopic(own.bootstrap, test.topics[kind], PARTITIONS, { readCommitted: true })) {
        expect(Date.now() - (m.timestamp ?? 0), `${kind} record stamped on append`).toBeLessThan(10 * 60_000);
      }
    }
  }, 300_000);
});
