import { it } from 'vitest';
import { startHarness } from '../helpers/engine-harness.js';
import { canonicalSteps, testTraffic, TEST_JOIN, TEST_CATEGORIES, jsonBytes } from './helpers.js';

it('debug', async () => {
  const steps = canonicalSteps(testTraffic(203, 1_500), 150);
  const keys = ['r-001054', 'r-001074'];
  steps.forEach((s, i) => s.inputs.forEach((inp) => { if (keys.includes(inp.value.requestId)) console.log('STEP', i, s.topic, JSON.stringify(inp.value).slice(0, 200)); }));
  const harness = await startHarness({ config: { join: TEST_JOIN, categories: TEST_CATEGORIES, embedded: { partitions: 4 } } });
  const { log, runtime } = harness.app;
  for (const step of steps) {
    const topic = harness.config.topics[step.topic];
    log.append(step.inputs.map((input) => ({ topic, key: Buffer.from(input.value.requestId, 'utf8'), value: jsonBytes(input), timestamp: input.value.timestamp, headers: {} })));
    runtime.runUntilIdle();
  }
  for (const t of ['predictions', 'feedback']) for (const r of await harness.records(t)) if (keys.includes(r.key ?? '')) console.log('IN', t, r.partition, r.offset, JSON.stringify(r.value).slice(0, 120));
  for (const t of ['samples', 'late', 'orphans', 'unmatched', 'review', 'dead-letters']) {
    for (const r of await harness.records(t)) if (keys.includes(r.key ?? '')) console.log('OUT', t, r.partition, r.offset, JSON.stringify(r.value).slice(0, 300));
  }
  await harness.close();
});
