/**
 * One benchmark case in a fresh process (so CPU, RSS and the JIT belong to that case alone).
 * Usage: node bin/run-ts.mjs bench/case.ts '<CaseSpec JSON>'  → prints `RESULT <json>` last.
 */
import type { CaseResult, CaseSpec } from './measure';

const spec = JSON.parse(process.argv[2] ?? '{}') as CaseSpec;

async function main(): Promise<CaseResult> {
  switch (spec.system) {
    case 'ours':
    case 'ours-data':
    case 'ours-engines':
    case 'ours-engines-data':
      return (await import('./run-ours')).runOurs(spec);
    case 'langgraph':
    case 'langgraph-checkpointed':
      return (await import('./run-langgraph')).runLangGraph(spec);
    case 'promise-all':
      return (await import('./run-promise-all')).runPromiseAll(spec);
    default:
      throw new Error(`unknown system ${String(spec.system)}`);
  }
}

try {
  const result = await main();
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  // Pollers and sockets of a timed-out run may still be busy: the figures are out, so leave.
  process.exit(0);
} catch (error) {
  process.stdout.write(`RESULT ${JSON.stringify({ spec, status: 'failed', error: String((error as Error)?.stack ?? error) })}\n`);
  process.exit(1);
}
