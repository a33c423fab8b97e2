import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModuleInvoker, resolveModulePath } from '../../../adapters/agents/module-invoker';
import { AgentInvocationError } from '../../../core/errors';
import type { ModuleAgentDefinition } from '../../../core/agent-kinds';
import type { AgentInvocation } from '../../../core/ports';

const dir = mkdtempSync(join(tmpdir(), 'bs-module-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

writeFileSync(
  join(dir, 'agents.ts'),
  `
export default async function echo(ctx: { agent: string; input: unknown; memory: unknown[]; branch: unknown }) {
  return { next_action: 'final_response', content: { agent: ctx.agent, input: ctx.input, memory: ctx.memory.length, branch: ctx.branch } };
}
export async function costly(ctx: { reportUsage(u: { inputTokens: number; outputTokens: number }): void }) {
  ctx.reportUsage({ inputTokens: 10, outputTokens: 5 });
  ctx.reportUsage({ inputTokens: 1, outputTokens: 2 });
  return 'done';
}
export async function throws() { throw new Error('the planner gave up'); }
export async function throwsObject() { throw { code: 7, why: 'no quota' }; }
export function waits(ctx: { signal: AbortSignal }) {
  return new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('stopped by signal'))));
}
export function ignores() { return new Promise(() => {}); }
`,
);

function call(definition: Omit<ModuleAgentDefinition, 'kind'>, extra: Partial<AgentInvocation<ModuleAgentDefinition>> = {}): AgentInvocation<ModuleAgentDefinition> {
  return {
    team: 't',
    runId: 'r1',
    agentName: 'Planner',
    definition: { kind: 'module', ...definition },
    branchId: 'root.2',
    step: 0,
    input: { q: 1 },
    memory: [{ role: 'user', agent: 'Planner', content: 'x' }],
    allowed: [],
    depth: 1,
    branchType: 'SIMPLE',
    ...extra,
  };
}

describe('module agents', () => {
  const invoker = new ModuleInvoker({ baseDir: dir });

  it('calls the default export with the agent, input, memory and branch, relative to the base folder', async () => {
    const reply = await invoker.invoke(call({ module: './agents.ts' }));
    expect(reply).toEqual({
      response: {
        next_action: 'final_response',
        content: { agent: 'Planner', input: { q: 1 }, memory: 1, branch: { id: 'root.2', runId: 'r1', depth: 1, type: 'SIMPLE' } },
      },
    });
  });

  it('sums what reportUsage reported into the reply', async () => {
    expect(await invoker.invoke(call({ module: join(dir, 'agents.ts'), export: 'costly' }))).toEqual({
      response: 'done',
      usage: { inputTokens: 11, outputTokens: 7 },
    });
  });

  it('turns what the function throws into a readable AgentInvocationError', async () => {
    await expect(invoker.invoke(call({ module: './agents.ts', export: 'throws' }))).rejects.toThrow(
      new AgentInvocationError('Planner', 'the planner gave up'),
    );
    await expect(invoker.invoke(call({ module: './agents.ts', export: 'throwsObject' }))).rejects.toThrow('{"code":7,"why":"no quota"}');
  });

  it('a call ends when its signal aborts, whether the function listens to the signal or not', async () => {
    for (const name of ['waits', 'ignores']) {
      const controller = new AbortController();
      const pending = invoker.invoke(call({ module: './agents.ts', export: name }, { signal: controller.signal }));
      controller.abort(new Error('the branch ended'));
      await expect(pending).rejects.toThrow('the branch ended');
    }
  });

  it('names a missing export (listing the ones there are), a missing file, and a file outside the allowed folders', async () => {
    await expect(invoker.invoke(call({ module: './agents.ts', export: 'nope' }))).rejects.toThrow(
      /has no function export "nope" \(function exports: .*costly/,
    );
    await expect(invoker.invoke(call({ module: './missing.ts' }))).rejects.toThrow(/cannot load module .*missing\.ts/);
    expect(() => resolveModulePath('../etc/agents.ts', dir, [dir])).toThrow(/must be inside/);
    expect(() => resolveModulePath('./agents.json', dir)).toThrow(/must be a \.ts, \.mts, \.js, \.mjs file/);
  });

  it('a symlink inside the allowed folder does not lead out of it (the real path is checked)', () => {
    const outside = mkdtempSync(join(tmpdir(), 'bs-module-outside-'));
    try {
      writeFileSync(join(outside, 'evil.ts'), 'export default () => "escaped";\n');
      symlinkSync(outside, join(dir, 'link'));
      symlinkSync(join(outside, 'evil.ts'), join(dir, 'evil-link.ts'));
      expect(() => resolveModulePath('./link/evil.ts', dir, [dir])).toThrow(/must be inside/);
      expect(() => resolveModulePath('./evil-link.ts', dir, [dir])).toThrow(/must be inside/);
      expect(resolveModulePath('./agents.ts', dir, [dir])).toBe(join(dir, 'agents.ts'));
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });
});
