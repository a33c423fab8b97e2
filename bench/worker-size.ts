/**
 * What the step-worker needs, measured on the deploy rehearsal (the bundled function in its
 * Lambda-like containers, fed batches of up to 10 by its event sources): for each agent kind
 * that runs in AWS (an inline `script` agent and an `http` agent on a local server), at 0 ms and
 * with a latency, one fan-out of `--leaves` leaves after a warm-up run.
 *
 * Usage: npx tsx bench/worker-size.ts [--leaves 40] [--latency 2000] [--containers 4] [--wide 300]
 *
 * A last workload is the memory of width: `--wide` leaves each answering 2 KB, gathered by the
 * default aggregator, so the parent's resumed step holds the whole aggregate.
 *
 * Per workload: the step-worker's invocations, the CPU work per step (event loop busy time in
 * its container), the busy share of the invocations' wall time, and the most heap and off-heap
 * memory a container held. A container is a thread of the rehearsal process, whose RSS cannot be
 * told apart, so the container's RSS is estimated as a fresh Node process's RSS once it has
 * loaded the same bundle plus what the invocations added to the heap and off-heap memory.
 * (`module` agents run only locally, never in the stack: they have no Lambda size.)
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ENVIRONMENT_VARIABLES } from '../functions/lambda-environment';
import { RehearsalStack } from '../local/rehearsal/rehearsal-stack';
import { synthesize, type Assembly } from '../local/rehearsal/synth';

const MB = 1024 * 1024;

/** A copy of the assembly whose registry also has the http agents (every function reads it). */
function withHttpAgents(assembly: Assembly, url: string, latencyMs: number): { assembly: Assembly; bundle: string } {
  const dir = mkdtempSync(join(tmpdir(), 'worker-size-'));
  cpSync(assembly.dir, dir, { recursive: true });
  const file = join(dir, `${assembly.stackName}.template.json`);
  const template = JSON.parse(readFileSync(file, 'utf8')) as { Resources: Record<string, { Type: string; Properties: any; Metadata?: any }> };
  let bundle = '';
  for (const r of Object.values(template.Resources)) {
    const vars = r.Type === 'AWS::Lambda::Function' ? r.Properties.Environment?.Variables : undefined;
    if (!vars?.[ENVIRONMENT_VARIABLES.agentRegistry]) continue;
    const registry = JSON.parse(vars[ENVIRONMENT_VARIABLES.agentRegistry]);
    registry.HttpFast = { kind: 'http', url: `${url}/?delay=0` };
    registry.HttpSlow = { kind: 'http', url: `${url}/?delay=${latencyMs}`, timeoutMs: latencyMs + 30_000 };
    vars[ENVIRONMENT_VARIABLES.agentRegistry] = JSON.stringify(registry);
    if (vars.POWERTOOLS_SERVICE_NAME === 'step-worker') bundle = join(dir, r.Metadata['aws:asset:path'], 'index.mjs');
  }
  writeFileSync(file, JSON.stringify(template));
  return { assembly: { ...assembly, dir }, bundle };
}

/** RSS, heap and off-heap memory of a fresh Node process that loaded the bundle (a container after its init). */
function baseline(bundle: string): { rss: number; heapTotal: number; external: number } {
  const script = `const m = await import(${JSON.stringify(bundle)}); globalThis.gc(); const u = process.memoryUsage(); console.log(JSON.stringify({ rss: u.rss, heapTotal: u.heapTotal, external: u.external + u.arrayBuffers, loaded: typeof m.handler }));`;
  const out = execFileSync(process.execPath, ['--expose-gc', '--enable-source-maps', '--input-type=module', '-e', script], {
    env: { PATH: process.env.PATH, AWS_REGION: 'us-east-1' },
    encoding: 'utf8',
  });
  return JSON.parse(out.trim().split('\n').pop()!);
}

function scenario(name: string, leaf: string, leaves: number, latencyMs: number, bytes = 0) {
  return {
    name,
    entry: 'Fanner',
    request: 'go',
    limits: { maxConcurrentBranches: leaves, maxFanOut: leaves, maxBranches: leaves + 1 },
    agents: {
      Fanner: {
        kind: 'script',
        allowed: [leaf],
        responses: [
          { next_action: 'parallel_invoke', agents: Array(leaves).fill(leaf) },
          { next_action: 'final_response', content: 'done' },
        ],
      },
      ScriptFast: { kind: 'script', responses: [{ next_action: 'final_response', content: bytes ? { v: 1, text: 'x'.repeat(bytes) } : { v: 1 } }] },
      ScriptSlow: { kind: 'script', responses: [{ $delayMs: latencyMs, next_action: 'final_response', content: { v: 1 } }] },
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      leaves: { type: 'string', default: '40' },
      latency: { type: 'string', default: '2000' },
      containers: { type: 'string', default: '4' },
      wide: { type: 'string', default: '300' },
    },
  });
  const leaves = Number(values.leaves);
  const latencyMs = Number(values.latency);
  const server = createServer((req, res) => {
    const delay = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('delay') ?? 0);
    req.resume();
    req.on('end', () => setTimeout(() => res.setHeader('content-type', 'application/json').end(JSON.stringify({ next_action: 'final_response', content: { v: 1 } })), delay));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { assembly, bundle } = withHttpAgents(await synthesize({}), url, latencyMs);
  const base = baseline(bundle);
  const stack = await RehearsalStack.start({ assembly, maxContainers: Number(values.containers) });
  const rows = [];
  try {
    const wide = Number(values.wide);
    for (const [kind, leaf, ms, count, bytes] of [
      ['script', 'ScriptFast', 0, leaves, 0],
      ['script', 'ScriptSlow', latencyMs, leaves, 0],
      ['http', 'HttpFast', 0, leaves, 0],
      ['http', 'HttpSlow', latencyMs, leaves, 0],
      ['script, 2 KB results, default aggregate', 'ScriptFast', 0, wide, 2048],
    ] as const) {
      // Warm-up: containers started and their code loaded (init is not the steady state).
      const warm = await stack.request('POST', '/runs', { body: scenario(`warm-${leaf}`, leaf, leaves, ms) });
      await stack.waitForRun((JSON.parse(warm.body) as { runId: string }).runId);
      await stack.settle();
      const before = stack.usageOf('step-worker');
      const response = await stack.request('POST', '/runs', { body: scenario(`size-${leaf}`, leaf, count, ms, bytes) });
      const run = await stack.waitForRun((JSON.parse(response.body) as { runId: string }).runId);
      await stack.settle();
      const after = stack.usageOf('step-worker');
      const invocations = after.invocations - before.invocations;
      const steps = count + 2;
      const busyMs = after.busyMs - before.busyMs;
      const wallMs = after.wallMs - before.wallMs;
      const rssMb = (base.rss + Math.max(0, after.peakHeapBytes - base.heapTotal) + Math.max(0, after.peakExternalBytes - base.external)) / MB;
      rows.push({
        kind: `${kind}${count === leaves ? '' : ` (${count} leaves)`}`,
        latencyMs: ms,
        status: run.status,
        invocations,
        stepsPerInvocation: steps / invocations,
        busyMsPerStep: busyMs / steps,
        busyShare: busyMs / wallMs,
        wallMsPerInvocation: wallMs / invocations,
        peakHeapMb: after.peakHeapBytes / MB,
        peakExternalMb: after.peakExternalBytes / MB,
        estimatedRssMb: rssMb,
      });
    }
  } finally {
    await stack.close();
    server.close();
    rmSync(assembly.dir, { recursive: true, force: true });
  }
  console.log(`fresh process with the step-worker bundle loaded: RSS ${(base.rss / MB).toFixed(1)} MB, heap ${(base.heapTotal / MB).toFixed(1)} MB, off-heap ${(base.external / MB).toFixed(1)} MB`);
  console.log(`${leaves} leaves per run, up to ${values.containers} step-worker containers`);
  console.log('| agent | latency ms | status | invocations | steps per invocation | CPU ms per step | busy share of wall time | wall ms per invocation | peak heap MB | peak off-heap MB | estimated RSS MB |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.kind} | ${r.latencyMs} | ${r.status} | ${r.invocations} | ${r.stepsPerInvocation.toFixed(1)} | ${r.busyMsPerStep.toFixed(1)} | ${(r.busyShare * 100).toFixed(1)} % | ${r.wallMsPerInvocation.toFixed(0)} | ${r.peakHeapMb.toFixed(1)} | ${r.peakExternalMb.toFixed(1)} | ${r.estimatedRssMb.toFixed(0)} |`,
    );
  }
  console.log(JSON.stringify({ baseline: base, rows }));
}

void main();
