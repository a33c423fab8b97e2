/**
 * branch-spawner as a library: start the local runtime, run scenario objects, await their
 * documents (the same document as `branch-spawner run --json`), with lifecycle hooks in code.
 *
 *   const spawner = await startLocalSpawner({ hooks: { onBranchCompleted: (b, r) => ... } });
 *   const doc = await spawner.run({ name: 'x', entry: 'A', agents: { A: {...} } });
 *   await spawner.close();
 */
import { parseScenario, type Scenario } from '../core/scenario';
import { attachHooks, type HookError, type LifecycleHooks } from './hooks';
import { resolveModuleAgents } from './module-agents';
import { readRunDocument, type runDocument } from './run-command';
import { LocalRuntime, type LocalRuntimeOptions } from './runtime';
import { runInputOf } from '../core/use-cases/start-run';

export type RunDocument = ReturnType<typeof runDocument>;

export interface LocalSpawnerOptions extends LocalRuntimeOptions {
  /** Called for every run of this spawner (see local/hooks.ts). Registered aggregators: `aggregators`. */
  hooks?: LifecycleHooks;
  /** Told about a hook that threw (the run goes on); default: nothing (see `hookErrors`). */
  onHookError?(failure: HookError): void;
}

export interface LocalSpawner {
  /**
   * Validates a scenario object (as a scenario file would be), runs it, and resolves with its
   * document once the run ended and every hook call for it returned. `baseDir` is where relative
   * `module` agent paths resolve (default: the working directory).
   */
  run(scenario: unknown, options?: { baseDir?: string }): Promise<RunDocument>;
  /** Hook calls that threw so far. */
  readonly hookErrors: HookError[];
  readonly runtime: LocalRuntime;
  close(): Promise<void>;
}

export async function startLocalSpawner(options: LocalSpawnerOptions = {}): Promise<LocalSpawner> {
  const { hooks, onHookError, ...runtimeOptions } = options;
  const runtime = await LocalRuntime.start(runtimeOptions);
  const attached = hooks ? attachHooks(runtime, hooks, onHookError) : undefined;
  return {
    runtime,
    hookErrors: attached?.errors ?? [],
    async run(document, runOptions = {}) {
      let scenario: Scenario = parseScenario(document, 'scenario');
      scenario = await resolveModuleAgents(scenario, `${runOptions.baseDir ?? process.cwd()}/scenario`, 'scenario');
      const runId = await runtime.startRun(runInputOf(scenario));
      const run = await runtime.waitForRun(runId);
      await attached?.drain();
      return readRunDocument(runtime.deps, run);
    },
    async close() {
      attached?.detach();
      await runtime.close();
    },
  };
}

export type { LifecycleHooks, HookBranch, HookRun, HookSyncPoint, HookError } from './hooks';
export type { ModuleAgentContext } from '../adapters/agents/module-invoker';
