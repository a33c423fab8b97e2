/**
 * What running user code in a worker thread costs (adapters/modules/module-host): a module
 * agent's call through the host against the same function called in this process.
 *
 *   node bin/run-ts.mjs bench/module-calls.ts [calls]
 *
 * Prints the worker's start (tsx loads in it), the time per call one at a time, and per call with
 * 100 in flight, for a small context (a short memory) and a large one (a 100 KB memory).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ModuleHost } from '../adapters/modules/module-host';

const calls = Number(process.argv[2] ?? 2000);
const dir = mkdtempSync(join(tmpdir(), 'bs-module-calls-'));
const file = join(dir, 'agent.ts');
writeFileSync(file, 'export default async (ctx: { input: unknown; memory: unknown[] }) => ({ next_action: "final_response", content: ctx.memory.length });\n');

const small = { agent: 'A', input: 'go', memory: [{ role: 'user', agent: 'A', content: 'hello' }], branch: { id: 'root', runId: 'r', depth: 0, type: 'SIMPLE' } };
const large = { ...small, memory: Array.from({ length: 100 }, (_, i) => ({ role: 'user', agent: 'A', content: 'x'.repeat(1000) + i })) };

async function perCall(call: (ctx: object) => Promise<unknown>, ctx: object, inFlight: number): Promise<number> {
  const started = performance.now();
  for (let done = 0; done < calls; done += inFlight) {
    await Promise.all(Array.from({ length: Math.min(inFlight, calls - done) }, () => call(ctx)));
  }
  return ((performance.now() - started) * 1000) / calls; // µs per call
}

const host = new ModuleHost();
const t0 = performance.now();
await host.functions(file);
const startMs = performance.now() - t0;
const inWorker = (ctx: object) => host.call(file, 'default', [{ ...ctx, signal: new AbortController().signal, reportUsage: () => undefined }]);
const fn = ((await import(pathToFileURL(file).href)) as { default: (ctx: object) => Promise<unknown> }).default;
const inProcess = (ctx: object) => fn({ ...ctx, signal: new AbortController().signal, reportUsage: () => undefined });

// Warm-up (JIT) for both, then the measures.
await perCall(inWorker, small, 10);
await perCall(inProcess, small, 10);
const rows: [string, number, number][] = [];
for (const [name, ctx] of [['small context', small], ['100 KB memory', large]] as const) {
  for (const inFlight of [1, 100]) {
    rows.push([`${name}, ${inFlight} in flight`, await perCall(inProcess, ctx, inFlight), await perCall(inWorker, ctx, inFlight)]);
  }
}
await host.close();
rmSync(dir, { recursive: true, force: true });

console.log(`worker start (first load, tsx included): ${startMs.toFixed(0)} ms; ${calls} calls per row`);
console.log('| case | in process (µs/call) | worker thread (µs/call) | added (µs/call) |');
console.log('|---|---|---|---|');
for (const [name, a, b] of rows) console.log(`| ${name} | ${a.toFixed(1)} | ${b.toFixed(1)} | ${(b - a).toFixed(1)} |`);
