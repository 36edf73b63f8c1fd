import { it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { canonicalSteps, createTestApp, decodeSamples, differences, embeddedSamples, finalByKey, InputDriver, KafkaWorker, kafkaEndpoints, readTopic, testTraffic } from './helpers.js';

it('debug rebalance', async () => {
  const kafka = kafkaEndpoints()!;
  const steps = canonicalSteps(testTraffic(203, 1_500), 150);
  const expected = await embeddedSamples(steps, 4);
  const test = createTestApp(kafka, 'rebalance', 4);
  const a = KafkaWorker.start('a', test.config({ instanceId: 'a' }));
  await a.running();
  let b: KafkaWorker | undefined;
  let bStopped: Promise<unknown> | undefined;
  const driver = await InputDriver.connect({ bootstrap: kafka.bootstrap, group: test.run, topics: test.topics, partitions: 4, stepTimeoutMs: 90_000 });
  const marks: string[] = [];
  await driver.drive(steps, async (i) => {
    marks.push(`${Date.now()} step ${i} committed`);
    if (i === 9) { b = KafkaWorker.start('b', test.config({ instanceId: 'b' })); marks.push(`${Date.now()} start b`); }
    if (i === 24 && b) { await b.waitFor((l) => l.msg === 'partitions assigned', 60_000, 'x'); marks.push(`${Date.now()} stop b`); bStopped = b.stop(); }
  });
  await bStopped;
  await a.stop();
  await driver.close();
  writeFileSync('/tmp/kdbg/a.log', a.lines.map((l) => JSON.stringify(l)).join('\n'));
  writeFileSync('/tmp/kdbg/b.log', b!.lines.map((l) => JSON.stringify(l)).join('\n'));
  writeFileSync('/tmp/kdbg/marks.log', marks.join('\n'));
  const actual = await decodeSamples(kafka.registryUrl, await readTopic(kafka.bootstrap, test.topics.samples, 4, { readCommitted: true }));
  console.log('RUN', test.run, differences(finalByKey(actual), finalByKey(expected)));
});
