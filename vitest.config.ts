import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One temp folder for the whole suite, removed at the end; no ExperimentalWarning noise.
    globalSetup: ['test/support/global-setup.ts'],
    environment: 'node',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Three workers on two cores: the suites wait on engines, timers and child processes a good part of the time.
    maxWorkers: 3,
    // Test files share their worker's loaded modules: loading the AWS SDK, the CDK and the
    // engines once per worker instead of once per file saves much of the suite's CPU.
    // Files keep nothing global between them (no module mocks, no env changes outside global setup).
    isolate: false,
    // Concurrent tests (it.concurrent) mostly wait on agents' delays and redeliveries.
    maxConcurrency: 24,
  },
});
