/**
 * End to end against the real broker and registry: the same seeded traffic through the Kafka mode
 * (JSON inputs, exactly-once) and through the embedded mode gives the same samples, record for record.
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  canonicalSteps,
  createTestApp,
  decodeSamples,
  differences,
  embeddedSamples,
  finalByKey,
  historyByKey,
  InputDriver,
  kafkaEndpoints,
  readTopic,
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
    let t = Date.now();
    const expected = await embeddedSamples(steps, PARTITIONS);
    console.log('embedded', Date.now() - t, 'steps', steps.length); t = Date.now();

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
    console.log('kafka', Date.now() - t); t = Date.now();

    const messages = await readTopic(kafka.bootstrap, test.topics.samples, PARTITIONS, { readCommitted: true });
    const actual = await decodeSamples(kafka.registryUrl, messages);
    for (const s of actual) expect(s.key).toBe(s.sample.requestId);

    // Sanity of the expectation itself: the traffic exercises corrections, several label sources.
    const expectedFinal = finalByKey(expected);
    expect(expectedFinal.size).toBeGreaterThan(REQUESTS * 0.4);
    expect(expected.some((s) => s.sample.revision > 0)).toBe(true);
    expect(new Set(expected.map((s) => s.sample.labelSource))).toEqual(new Set(['CONFIRMED', 'CORRECTED']));

    expect(differences(finalByKey(actual), expectedFinal)).toBe('');
    // Stronger: every revision of every request, in order, none missing or extra.
    expect(differences(historyByKey(actual), historyByKey(expected))).toBe('');
  });
});
