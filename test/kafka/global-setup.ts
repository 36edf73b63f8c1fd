/**
 * vitest globalSetup: one broker + registry for the whole test run.
 *
 * Wire it in vitest.config.ts with `test: { globalSetup: ['test/kafka/global-setup.ts'] }`.
 * Tests read the endpoints with `inject('kafka')` (null when Kafka is unavailable here) or from
 * process.env.SAMPLELOOP_TEST_BOOTSTRAP / SAMPLELOOP_TEST_REGISTRY.
 * If SAMPLELOOP_TEST_BOOTSTRAP and SAMPLELOOP_TEST_REGISTRY are already set, that external broker is used
 * and nothing is started.
 */
import type { TestProject } from 'vitest/node';
import { kafkaAvailable, startLocalKafka } from './harness.js';

export interface ProvidedKafka {
  bootstrap: string;
  registryUrl: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    kafka: ProvidedKafka | null;
  }
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const externalBootstrap = process.env.SAMPLELOOP_TEST_BOOTSTRAP;
  const externalRegistry = process.env.SAMPLELOOP_TEST_REGISTRY;
  if (externalBootstrap && externalRegistry) {
    project.provide('kafka', { bootstrap: externalBootstrap, registryUrl: externalRegistry });
    return undefined;
  }
  if (!kafkaAvailable()) {
    project.provide('kafka', null);
    return undefined;
  }
  const kafka = await startLocalKafka();
  process.env.SAMPLELOOP_TEST_BOOTSTRAP = kafka.bootstrap;
  process.env.SAMPLELOOP_TEST_REGISTRY = kafka.registryUrl;
  project.provide('kafka', { bootstrap: kafka.bootstrap, registryUrl: kafka.registryUrl });
  return async () => {
    delete process.env.SAMPLELOOP_TEST_BOOTSTRAP;
    delete process.env.SAMPLELOOP_TEST_REGISTRY;
    await kafka.stop();
  };
}
