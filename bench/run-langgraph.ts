/**
 * The same tree on LangGraph.js: one graph per fan-out — `plan` (the parent's spawn decision),
 * a Send per child to `child`, `join` (the resumed step over the reduced results). A child
 * that has children of its own invokes the graph again (a subgraph), so every fan-out has its
 * own `maxConcurrency` = the limit, like the Map's MaxConcurrency.
 * `langgraph`: no checkpointer. `langgraph-checkpointed`: a MemorySaver checkpointer (every
 * superstep of every subgraph is checkpointed, in memory — the shape of durability, not durable).
 */
import { Annotation, END, MemorySaver, Send, START, StateGraph } from '@langchain/langgraph';
import { agentCall, fanInStats, ProcessMeter, startProfiler, type CaseResult, type CaseSpec, processFigures } from './measure';
import { branchCount, QUICK_SHAPES, type TreeShape } from './workloads';

const State = Annotation.Root({
  id: Annotation<string>(),
  level: Annotation<number>(),
  results: Annotation<unknown[]>({ reducer: (a, b) => a.concat(b), default: () => [] }),
  out: Annotation<unknown>(),
});

interface Tally {
  completed: number;
  /** parent id → when its last child's node returned. */
  lastChildEnd: Map<string, number>;
  fanIn: number[];
}

interface GraphConfig {
  maxConcurrency: number;
  recursionLimit: number;
  configurable?: { thread_id: string };
}

interface TreeGraph {
  invoke(input: { id: string; level: number }, config: GraphConfig): Promise<{ out: unknown }>;
}

function parentOf(id: string): string {
  return id.slice(0, id.lastIndexOf('.'));
}

/** Builds the graph and gives back a function that runs the whole tree from its root. */
function buildGraph(
  shape: TreeShape,
  latencyMs: number,
  concurrency: number,
  tally: Tally,
  checkpointed: boolean,
): () => Promise<{ out: unknown }> {
  const config: GraphConfig = { maxConcurrency: concurrency, recursionLimit: 100 };
  const compiled = new StateGraph(State)
    .addNode('plan', async () => {
      await agentCall(latencyMs, { next_action: 'parallel_invoke' });
      return {};
    })
    .addNode('child', async (s) => {
      let result: unknown;
      if (s.level === shape.fanOuts.length) {
        result = await agentCall(latencyMs, { next_action: 'final_response', content: { v: 1 } });
        tally.completed++;
      } else {
        result = (await graph.invoke({ id: s.id, level: s.level }, config)).out;
      }
      tally.lastChildEnd.set(parentOf(s.id), performance.now());
      return { results: [result] };
    })
    .addNode('join', async (s) => {
      tally.fanIn.push(performance.now() - (tally.lastChildEnd.get(s.id) ?? performance.now()));
      await agentCall(latencyMs, { next_action: 'final_response', content: { child_count: s.results.length } });
      tally.completed++;
      return { out: 'done' };
    })
    .addEdge(START, 'plan')
    .addConditionalEdges(
      'plan',
      (s) => Array.from({ length: shape.fanOuts[s.level] }, (_, i) => new Send('child', { id: `${s.id}.${i}`, level: s.level + 1 })),
      ['child'],
    )
    .addEdge('child', 'join')
    .addEdge('join', END)
    .compile(checkpointed ? { checkpointer: new MemorySaver() } : {});
  // Referenced by the `child` node above: a child with children runs the graph again.
  const graph = compiled as unknown as TreeGraph;
  // Nested invocations inherit the thread and checkpoint under their own namespace.
  return () => graph.invoke({ id: 'root', level: 0 }, checkpointed ? { ...config, configurable: { thread_id: 'bench' } } : config);
}

export async function runLangGraph(spec: CaseSpec): Promise<CaseResult> {
  const warm = { completed: 0, lastChildEnd: new Map(), fanIn: [] };
  const checkpointed = spec.system === 'langgraph-checkpointed';
  // Warm-up (JIT, lazy modules) at 0 ms: the latency teaches the JIT nothing.
  await buildGraph(QUICK_SHAPES.balanced, 0, spec.concurrency, warm, checkpointed)();
  const tally: Tally = { completed: 0, lastChildEnd: new Map(), fanIn: [] };
  const runTree = buildGraph(spec.shape, spec.latencyMs, spec.concurrency, tally, checkpointed);
  const stopProfiler = await startProfiler(spec.profileFile);
  const meter = new ProcessMeter();
  const out = await runTree();
  const m = meter.stop();
  await stopProfiler();
  const expected = branchCount(spec.shape);
  return {
    spec,
    status: out.out === 'done' && tally.completed === expected ? 'completed' : 'failed',
    expectedBranches: expected,
    completedBranches: tally.completed,
    ...processFigures(m, tally.completed),
    fanIn: fanInStats(tally.fanIn),
  };
}
