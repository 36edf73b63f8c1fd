import { defineConfig } from 'vitest/config';

/**
 * Three projects, so unit tests never wait for a JVM:
 * - `unit`: everything outside test/kafka.
 * - `kafka`: the Kafka-mode integration tests against one shared broker + registry, started by the
 *   global setup only when a file of this project is selected (vitest runs a project's globalSetup
 *   only for projects with selected files). Without java/cached jars they skip (SAMPLELOOP_SKIP_KAFKA=1 forces it).
 * - `kafka-harness`: the harness's own test, which starts and stops its own brokers.
 *
 * `npx vitest run --project unit` runs the fast suite; `npx vitest run --project kafka` the Kafka one.
 */
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: ['test/kafka/**'] },
      },
      {
        extends: true,
        test: {
          name: 'kafka',
          include: ['test/kafka/**/*.test.ts'],
          exclude: ['test/kafka/harness.test.ts'],
          globalSetup: ['test/kafka/global-setup.ts'],
          testTimeout: 240_000,
          hookTimeout: 240_000,
        },
      },
      {
        extends: true,
        test: { name: 'kafka-harness', include: ['test/kafka/harness.test.ts'] },
      },
    ],
  },
});
