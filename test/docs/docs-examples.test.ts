/**
 * The reference docs cannot drift from the code: every JSON and YAML example in docs/protocol.md,
 * docs/scenarios.md and docs/concepts.md goes through the real parser, validator or aggregator,
 * and the limits table is compared with core/limit-table.ts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { continueAggregate, defaultAggregate, weightedAverage, type ChildResult } from '../../core/aggregators';
import { countersOf, runCost } from '../../core/cost';
import { InvalidAgentResponseError } from '../../core/errors';
import { EVENT_TYPES, eventId } from '../../core/events';
import { LIMIT_TABLE, type LimitName } from '../../core/limit-table';
import { parseAgentResponse } from '../../core/protocol';
import { parseScenario } from '../../core/scenario';

const DOCS = join(import.meta.dirname, '..', '..', 'docs');

interface Block {
  lang: string;
  tag: string;
  text: string;
  line: number;
}

function blocks(file: string): Block[] {
  const text = readFileSync(join(DOCS, file), 'utf8');
  const found: Block[] = [];
  const fence = /^```([a-z]*)[ \t]*([^\n`]*)\n([\s\S]*?)^```$/gm;
  for (const m of text.matchAll(fence)) {
    found.push({ lang: m[1], tag: m[2].trim(), text: m[3], line: text.slice(0, m.index).split('\n').length });
  }
  return found;
}

const context = { currentAgent: 'Reasoner', currentInput: 'the current input' };

describe('docs/protocol.md', () => {
  const all = blocks('protocol.md');

  it('has examples of every form', () => {
    const valid = all.filter((b) => b.lang === 'json' && b.tag === '').map((b) => b.text);
    for (const form of ['final_response', 'invoke_agent', 'parallel_invoke', 'agent_requests', 'branches', 'wait_for_all', 'next_actions', 'inherit_memory', 'metadata', 'aggregator', 'max_concurrency', 'tolerated_failures', 'on_failure', 'complete_when']) {
      expect(valid.some((t) => t.includes(`"${form}"`)), form).toBe(true);
    }
    expect(all.filter((b) => b.tag === 'invalid').length).toBeGreaterThanOrEqual(5);
  });

  it('every valid example is accepted by the parser', () => {
    for (const b of all.filter((b) => b.lang === 'json' && b.tag === '')) {
      const value = JSON.parse(b.text);
      // The re-ask input is an input, not an answer; every other block is an answer.
      if (value.error === 'InvalidAgentResponse') continue;
      expect(() => parseAgentResponse(value, context), `protocol.md line ${b.line}`).not.toThrow();
    }
  });

  it('every example marked invalid is refused with InvalidAgentResponseError', () => {
    for (const b of all.filter((b) => b.tag === 'invalid')) {
      expect(() => parseAgentResponse(JSON.parse(b.text), context), `protocol.md line ${b.line}`).toThrow(InvalidAgentResponseError);
    }
  });

  it('the prose-around-JSON example is read as its JSON object', () => {
    const [prose] = all.filter((b) => b.tag === 'response');
    expect(parseAgentResponse(prose.text, context)).toMatchObject({ kind: 'spawn', groups: [[{ agent: 'Researcher' }, { agent: 'Critic' }]] });
  });

  it('the re-ask input shown is what an invalid answer produces', () => {
    const reask = all.map((b) => (b.lang === 'json' && !b.tag ? JSON.parse(b.text) : null)).find((v) => v?.error === 'InvalidAgentResponse');
    const refused = (() => {
      try {
        parseAgentResponse({ next_action: 'delegate', agent: 'Editor' }, context);
      } catch (error) {
        return error as InvalidAgentResponseError;
      }
    })()!;
    expect(reask).toEqual({ error: 'InvalidAgentResponse', field: refused.field, message: refused.message });
  });
});

describe('docs/scenarios.md', () => {
  it('every YAML example is a valid scenario', () => {
    const yaml = blocks('scenarios.md').filter((b) => b.lang === 'yaml');
    expect(yaml.length).toBeGreaterThanOrEqual(4);
    for (const b of yaml) expect(() => parseScenario(parseYaml(b.text), `scenarios.md line ${b.line}`)).not.toThrow();
  });

  it('documents every agent kind', () => {
    const text = readFileSync(join(DOCS, 'scenarios.md'), 'utf8');
    for (const kind of ['script', 'http', 'lambda', 'bedrock', 'openai']) expect(text).toContain(`### \`${kind}\``);
  });

  it('the limits table equals core/limit-table.ts', () => {
    const text = readFileSync(join(DOCS, 'scenarios.md'), 'utf8');
    const rows = [...text.matchAll(/^\| `(\w+)` \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|/gm)].map((m) => [m[1], m.slice(2, 6).map(Number)] as const);
    expect(Object.fromEntries(rows)).toEqual(
      Object.fromEntries(
        (Object.keys(LIMIT_TABLE) as LimitName[]).map((name) => {
          const row = LIMIT_TABLE[name];
          return [name, [row.default, row.teamMax, row.ceiling, row.min]];
        }),
      ),
    );
  });
});

describe('docs/concepts.md', () => {
  const all = blocks('concepts.md');
  const shown = (tag: string) => JSON.parse(all.find((b) => b.tag === tag)!.text);

  it('the default aggregate shown is what the default aggregator returns', () => {
    const children: ChildResult[] = [
      { branchId: 'root.0', agent: 'Researcher', status: 'COMPLETED', result: 'a finding' },
      { branchId: 'root.1', agent: 'Researcher', status: 'FAILED', error: 'agent Researcher failed: boom' },
      { branchId: 'root.2', agent: 'Researcher', status: 'CANCELLED' },
    ];
    expect(defaultAggregate(children, { waitFor: 'all', metadata: { topic: 'risks' } })).toEqual(shown('aggregate-default'));
  });

  it('the aggregate shown for on_failure continue is what a parent gets', () => {
    const children: ChildResult[] = [
      { branchId: 'root.0', agent: 'Researcher', status: 'COMPLETED', result: 'a finding' },
      { branchId: 'root.1', agent: 'Researcher', status: 'FAILED', error: 'agent Researcher failed: boom' },
      { branchId: 'root.2', agent: 'Researcher', status: 'CANCELLED', error: 'the sync point was settled without it' },
    ];
    expect(continueAggregate(defaultAggregate(children, { waitFor: 'all' }), 'FAILURE_TOLERANCE_EXCEEDED', children)).toEqual(shown('aggregate-continue'));
  });

  it('the weighted average shown is what weighted_average returns', () => {
    const children: ChildResult[] = [
      { branchId: 'root.0', agent: 'E', status: 'COMPLETED', result: { value: 10, weight: 1 } },
      { branchId: 'root.1', agent: 'E', status: 'COMPLETED', result: { value: 20, weight: 3 } },
    ];
    expect(weightedAverage(children)).toEqual(shown('aggregate-weighted_average'));
  });

  it('the metrics.cost shown is priced with the price table from its own counters', () => {
    const cost = shown('cost');
    expect(runCost(countersOf(cost))).toEqual(cost);
  });

  it('every event shown has the event envelope and a known type, and the table lists every type', () => {
    const events = all.filter((b) => b.tag === 'event').map((b) => JSON.parse(b.text));
    expect(events.length).toBeGreaterThan(0);
    for (const event of events) {
      expect(EVENT_TYPES).toContain(event.type);
      expect(Object.keys(event).sort()).toEqual(['branchId', 'detail', 'eventId', 'runId', 'team', 'time', 'type']);
      // The id shown is the one the product gives that event.
      const seq = event.type === 'SyncPointReached' ? [event.detail.seq] : [];
      expect(event.eventId).toBe(eventId(event, event.type, event.branchId, ...seq));
    }
    const text = readFileSync(join(DOCS, 'concepts.md'), 'utf8');
    for (const type of EVENT_TYPES) expect(text).toContain(`\`${type}\``);
  });

  it("deploy.md's list of the events on the team bus names every type (a callback's token is in BranchWaitingForCallback)", () => {
    const deploy = readFileSync(join(DOCS, 'deploy.md'), 'utf8');
    const section = deploy.slice(deploy.indexOf('### Lifecycle events'), deploy.indexOf('### With the CLI'));
    for (const type of EVENT_TYPES) expect(section, type).toContain(`\`${type}\``);
  });
});
