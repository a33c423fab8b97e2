/**
 * The wide-aggregate scenario the large-value tests share (local runs, the rehearsal, the tree
 * page): one agent-decided fan-out of `children` script Workers, each answering
 * `{ v: 1, text: <bytes characters> }`, with the default aggregator, so the parent's aggregate is
 * about children × bytes. The parent then answers the aggregate as the run's result, or hands it to
 * another agent (`handOffTo`) as that agent's input.
 */
export interface WideAggregateOptions {
  maxConcurrentBranches?: number;
  /** An agent of the registry (or of `agents`) the parent hands the aggregate to instead of answering it. */
  handOffTo?: string;
  /** More agents (the one handed to, when inline). */
  agents?: Record<string, unknown>;
}

export function wideAggregateScenario(children: number, bytes: number, options: WideAggregateOptions = {}): Record<string, unknown> {
  const then = options.handOffTo
    ? { next_action: 'invoke_agent', agent: options.handOffTo, input: '$input' }
    : { next_action: 'final_response', content: '$input' };
  return {
    name: 'wide-aggregate',
    request: 'go',
    entry: 'Fanner',
    limits: { maxFanOut: children, maxConcurrentBranches: options.maxConcurrentBranches ?? 50, maxBranches: children + 1 },
    agents: {
      Fanner: {
        kind: 'script',
        allowed: ['Worker', ...(options.handOffTo ? [options.handOffTo] : [])],
        rules: [{ when: 'child_count', responses: [then] }],
        responses: [{ next_action: 'parallel_invoke', agents: Array(children).fill('Worker') }],
      },
      Worker: { kind: 'script', responses: [{ next_action: 'final_response', content: { v: 1, text: 'x'.repeat(bytes) } }] },
      ...options.agents,
    },
  };
}
