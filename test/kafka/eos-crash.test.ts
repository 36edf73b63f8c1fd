/**
 * Exactly-once under crashes: an instance (separate process, exactly_once) is killed with SIGKILL at
 * random moments while it processes, and restarted with the same instanceId (its transactional id,
 * so the restart fences the dead one and aborts its open transaction). Every output topic read
 * `read_committed` must hold exactly what the embedded engine produces for the same input: no
 * record lost, none duplicated.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { mulberry32 } from '../reference/traffic.js';
import {
  canonicalSteps,
  createTestApp,
  differences,
  finalByKey,
  historyByKey,
  InputDriver,
  KafkaWorker,
  kafkaEndpoints,
  otherOutputDifferences,
  readKafkaOutputs,
  runEmbedded,
  testTraffic,
  type TestApp,
} from './helpers.js';

const endpoints = kafkaEndpoints();
const PARTITIONS = 4;
const KILLS = 5;
/** Printed with a failure, so a run can be replayed: SAMPLELOOP_TEST_EOS_SEED=<n>. */
const SEED = Number(process.env.SAMPLELOOP_TEST_EOS_SEED ?? Date.now() % 100_000);

let runName = '';

describe.skipIf(endpoints === null)('Kafka mode exactly-once with kill -9', () => {
  const apps: TestApp[] = [];
  const workers: KafkaWorker[] = [];
  afterEach(async (context) => {
    await Promise.all(workers.map((w) => w.kill()));
    if (context.task.result?.state === 'fail') {
      const file = join(tmpdir(), `sampleloop-eos-crash-${SEED}-${Date.now()}.log`);
      for (const w of workers) w.saveLog(file);
      console.error(`worker logs of the failed run (${runName}): ${file}`);
    }
  });
  afterAll(() => apps.forEach((a) => a.cleanup()));

  it(`${KILLS + 1} SIGKILLs at random points under load (one during a restore) lose and duplicate nothing (seed ${SEED})`, async () => {
    const kafka = endpoints!;
    const rng = mulberry32(SEED);
    const steps = canonicalSteps(testTraffic(303, 1_500), 100);
    const expected = await runEmbedded(steps, PARTITIONS);
    const test = createTestApp(kafka, 'eos', PARTITIONS);
    apps.push(test);
    runName = test.run;
    const config = test.config({ instanceId: 'eos-1', guarantee: 'exactly_once' });

    // Kill points: one step in each of KILLS equal slices of the run (never the first step).
    const slice = Math.floor((steps.length - 1) / KILLS);
    const killAt = new Set(Array.from({ length: KILLS }, (_, k) => 1 + k * slice + Math.floor(rng() * slice)));
    expect(killAt.size).toBe(KILLS);

    let generation = 0;
    let worker = KafkaWorker.start(`eos-1#${generation}`, config);
    workers.push(worker);
    await worker.running();
    const driver = await InputDriver.connect({ bootstrap: kafka.bootstrap, group: test.run, topics: test.topics, partitions: PARTITIONS, stepTimeoutMs: 120_000 });
    const kills: Array<{ step: number; afterMs: number; tasks: number; duringRestore?: boolean }> = [];
    const restart = (): void => {
      generation++;
      worker = KafkaWorker.start(`eos-1#${generation}`, config);
      workers.push(worker);
    };
    try {
      for (let i = 0; i < steps.length; i++) {
        await driver.produce(steps[i]!);
        if (killAt.has(i)) {
          // Somewhere in fetching, processing, producing or committing this step.
          const afterMs = Math.floor(rng() * 400);
          await sleep(afterMs);
          kills.push({ step: i, afterMs, tasks: worker.heldPartitions(test.topics.predictions).length });
          await worker.kill();
          restart();
          if (kills.length === Math.ceil(KILLS / 2)) {
            // Once, also kill the replacement while it restores its state from the changelogs.
            await worker.waitFor((l) => l.msg === 'state restored from changelog', 60_000, 'a restore');
            kills.push({ step: i, afterMs: 0, tasks: 0, duringRestore: true });
            await worker.kill();
            restart();
          }
        }
        await driver.waitCommitted();
      }
    } finally {
      await driver.close();
    }
    expect(await worker.stop()).toBe(0);
    expect(kills).toHaveLength(KILLS + 1);
    // Restarted instances rebuild their state from the changelogs (no clean-close checkpoint). One killed
    // before it took its partitions, or while the changelogs were still empty, has nothing to restore.
    expect(workers.slice(1).some((w) => w.lines.some((l) => l.msg === 'state restored from changelog'))).toBe(true);

    const actual = await readKafkaOutputs(kafka, test.topics, PARTITIONS);
    expect(differences(finalByKey(actual.samples), finalByKey(expected.samples))).toBe('');
    expect(differences(historyByKey(actual.samples), historyByKey(expected.samples))).toBe('');
    expect(otherOutputDifferences(actual, expected)).toBe('');
  });
});
