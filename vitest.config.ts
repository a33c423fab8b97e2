import { relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The files that take longest, with their seconds when run alone (`npx vitest run <file>`, load
 * average ~3 on 2 cores, 2026-11-30): they start first. The suite's wall time is its CPU shared
 * over two cores only if no long file starts near the end; vitest orders by the last run's
 * durations when it has them (not on a fresh clone, as in CI: then by file size, which put the
 * rehearsal, the longest, after two minutes).
 */
const LONG_FILES: Record<string, number> = {
  // A cdk synth with esbuild bundling (~40 s, once per change of the sources), then ~50 s of runs.
  'test/local/rehearsal.test.ts': 90,
  'test/reliability/agent-response-fuzz.test.ts': 30,
  'test/reliability/chaos-contract.test.ts': 26,
  'test/adapters/dynamodb/dynamodb-local-branch-store.test.ts': 23,
  'test/reliability/chaos.test.ts': 23,
  'test/reliability/poison.test.ts': 20,
  'test/reliability/resume.test.ts': 19,
  'test/local/cli.test.ts': 18,
  'test/local/data-folder.test.ts': 18,
  'test/reliability/kill-resume-contract.test.ts': 17,
  'test/browser/tree-page.test.ts': 17,
  'test/local/cli-session.test.ts': 17,
  'test/adapters/stepfunctions/local-fan-out.test.ts': 13,
  // Its six tier blocks run at once (13 s of CPU too).
  'test/local/runtime-behaviours.test.ts': 13,
  'test/adapters/dynamodb/dynalite-branch-store.test.ts': 12,
  'test/local/dev-server.test.ts': 10,
  // CDK's CloudFormation checks start a WASM engine here (~8 s of CPU).
  'test/infra/deploy-rules.test.ts': 10,
};

/** The long files first (longest first), then vitest's own order (last run's durations, or file size). */
class LongFilesFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const seconds = (spec: TestSpecification) => LONG_FILES[relative(spec.project.config.root, spec.moduleId).split('\\').join('/')] ?? 0;
    // Array#sort is stable: files of equal weight keep vitest's order.
    return (await super.sort(files)).sort((a, b) => seconds(b) - seconds(a));
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
