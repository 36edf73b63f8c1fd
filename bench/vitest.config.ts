import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/** Smoke tests of the benchmarks themselves: `npx vitest run --config bench/vitest.config.ts`. */
export default defineConfig({
  root: fileURLToPath(new URL('..', import.meta.url)),
  test: {
    include: ['bench/**/*.test.ts'],
    testTimeout: 120_000,
    pool: 'forks',
  },
});
