/**
 * What the docs show must be what the product does: the `$input` directive as docs/scenarios.md
 * shows it, and the cost meter's example of docs/concepts.md from a real run of the example it
 * names (so neither can drift from the code).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { startLocalSpawner, type LocalSpawner } from '../../local/library';

const ROOT = join(import.meta.dirname, '..', '..');
const DOCS = join(ROOT, 'docs');
const read = (file: string) => readFileSync(join(DOCS, file), 'utf8');

/** The fenced blocks of a doc, with their language and tag (```json cost). */
function blocks(file: string): { lang: string; tag: string; text: string }[] {
  return [...read(file).matchAll(/^```([a-z]*)[ \t]*([^\n`]*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1], tag: m[2].trim(), text: m[3] }));
}

let spawner: LocalSpawner;
beforeAll(async () => {
  spawner = await startLocalSpawner();
});
afterAll(async () => {
  await spawner?.close();
});

describe('docs/scenarios.md: "$input"', () => {
  it('no example puts $input inside a longer string (only a whole "$input" is replaced)', () => {
    for (const file of ['scenarios.md', 'concepts.md', 'protocol.md', 'agents.md', 'llm-agents.md']) {
      for (const b of blocks(file).filter((b) => b.lang === 'yaml' || b.lang === 'json')) {
        expect(b.text, `${file}: ${b.text}`).not.toMatch(/"[^"\n]*(\S \$input|\$input \S)[^"\n]*"/);
      }
    }
  });

  it('the script-directives example answers with the input where it says "$input"', async () => {
    const yaml = blocks('scenarios.md').find((b) => b.lang === 'yaml' && b.text.includes('name: script-directives'))!;
    const document = { ...parseYaml(yaml.text), request: 'urgent: the roof leaks' };
    const doc = await spawner.run(document);
    expect(doc.status).toBe('COMPLETED');
    expect(JSON.stringify(doc.result)).toContain('"urgent: the roof leaks"');
    expect(JSON.stringify(doc.result)).not.toContain('$input');
  });
});

describe('docs/concepts.md: the cost meter', () => {
  it('the metrics.cost shown for examples/simple-parallel.yaml is what a run of it gives (memory tier, as `run`)', async () => {
    const text = read('concepts.md');
    expect(text).toMatch(/For `examples\/simple-parallel\.yaml` \(one fan-out of\s+three children, 4 branches\)[^`]*`run --json`[\s\S]{0,120}```json cost/);
    const shown = JSON.parse(blocks('concepts.md').find((b) => b.tag === 'cost')!.text);
    const { loadScenarioFile } = await import('../../local/scenario-file');
    const { runInputOf } = await import('../../core/use-cases/start-run');
    const { scenario } = await loadScenarioFile(join(ROOT, 'examples', 'simple-parallel.yaml'));
    const runtime = spawner.runtime;
    // A run slower than a second (a busy machine) gets one more flush of the cost item, one more
    // write unit each: counted, so that the figure compared is the one of a run at normal speed.
    const store = runtime.engines.store;
    const addCost = store.addCost.bind(store);
    const flushedRuns: string[] = [];
    store.addCost = async (scope, usage) => {
      flushedRuns.push(scope.runId);
      return addCost(scope, usage);
    };
    try {
      const runId = await runtime.startRun(runInputOf(scenario));
      await runtime.waitForRun(runId);
      // waitForRun flushes once when the run is over; more were the timer's, during a slow run.
      const extra = flushedRuns.filter((id) => id === runId).length - 1;
      await runtime.settle();
      const cost = await runtime.costOf(runId);
      const { runCost } = await import('../../core/cost');
      expect(runCost({ ...cost, writeUnits: cost.writeUnits - extra })).toEqual(shown);
    } finally {
      store.addCost = addCost;
    }
  });
});
