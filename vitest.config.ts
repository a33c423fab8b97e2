import { readFileSync } from 'node:fs';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** The first line of a test file that takes long (a synth, engines, many runs): it starts first. */
const LONG_RUNNING = '// Long-running: started first (vitest.config.ts).';

/**
 * The long files start first: the suite's wall time is its CPU shared over two cores only if no
 * long file starts near the end. Each long file says so on its first line, beside what makes it
 * long, so no table of measured seconds goes stale. Among them, and among the rest, vitest's own
 * order: the last run's durations when it has them, else file size (on a fresh clone, as in CI).
 */
class LongFilesFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const long = (spec: TestSpecification) => (readFileSync(spec.moduleId, 'utf8').startsWith(LONG_RUNNING) ? 1 : 0);
    // Array#sort is stable: files of equal weight keep vitest's order.
    return (await super.sort(files)).sort((a, b) => long(b) - long(a));
  }
}

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
    sequence: { sequencer: LongFilesFirst },
  },
});
