/**
 * End to end against the real broker and registry: the same seeded traffic through the Kafka mode
 * (JSON inputs, exactly-once) and through the embedded mode gives the same samples, record for
 * record, and the same unmatched / orphan / late / review / dead-letter records.
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
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
  type TestApp,
} from './helpers.js';

const endpoints = kafkaEndpoints();
const PARTITIONS = 4;
const REQUESTS = 2_500;
const CHUNK = 250;

describe.skipIf(endpoints === null)('Kafka mode end to end (real broker + registry)', () => {
  const apps: TestApp[] = [];
  afterAll(() => apps.forEach((a) => a.cleanup()));

  it(`${REQUESTS} requests give the same samples as the embedded mode`, async () => {
    const kafka = endpoints!;
    const steps = canonicalSteps(testTraffic(101, REQUESTS), CHUNK);
    const expected = await runEmbedded(steps, PARTITIONS);

    const test = createTestApp(kafka, 'e2e', PARTITIONS);
    apps.push(test);
    const app = await startInProcess(test.config({ instanceId: 'solo', guarantee: 'exactly_once' }));
    const driver = await InputDriver.connect({ bootstrap: kafka.bootstrap, group: test.run, topics: test.topics, partitions: PARTITIONS });
    try {
      await Promise.race([driver.drive(steps), app.failed]);
    } finally {
      await driver.close();
      await app.stop();
    }
    const actual = await readKafkaOutputs(kafka, test.topics, PARTITIONS);
    for (const s of actual.samples) expect(s.key).toBe(s.sample.requestId);

    // The traffic really exercises the join: corrections, several label sources, every side output.
    const expectedFinal = finalByKey(expected.samples);
    expect(expectedFinal.size).toBeGreaterThan(REQUESTS * 0.4);
    expect(expected.samples.some((s) => s.sample.revision > 0)).toBe(true);
    expect(new Set(expected.samples.map((s) => s.sample.labelSource))).toEqual(new Set(['CONFIRMED', 'CORRECTED']));
    for (const history of Object.values(expected.others)) expect(history.size).toBeGreaterThan(0);

    expect(differences(finalByKey(actual.samples), expectedFinal)).toBe('');
    // Stronger: every revision of every request, in order, none missing or extra.
    expect(differences(historyByKey(actual.samples), historyByKey(expected.samples))).toBe('');
    expect(otherOutputDifferences(actual, expected)).toBe('');
  });
});
