// Long-running: started first (vitest.config.ts).
/**
 * The tree page in a real browser: Debian's chromium driven by playwright-core,
 * against the dev server started in-process. Starts examples/hierarchical.yaml from the page and
 * awaits the page's own terminal state (no sleeps).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startDevServer, type DevServer } from '../../local/dev-server';
import { CHROMIUM, CHROMIUM_FLAGS as FLAGS, hasChromium, pageState } from '../support/browser';
import { wideAggregateScenario } from '../support/wide-aggregate';

// The README's picture is refreshed only on request (UPDATE_SCREENSHOT=1): a test run leaves the
// work tree as it found it.
const SCREENSHOT = process.env.UPDATE_SCREENSHOT
  ? join(import.meta.dirname, '..', '..', 'docs', 'screenshots', 'tree-page.png')
  : undefined;
if (!hasChromium) console.warn(`tree page browser test skipped: ${CHROMIUM} is absent (apt-get install -y chromium)`);

async function serverState(server: DevServer, page: Page): Promise<string> {
  const runId = await page.getAttribute('[data-testid="run"]', 'data-run-id');
  if (!runId) return 'no run on the page';
  const response = await fetch(`${server.url}/runs/${runId}/tree?format=ascii`);
  const run = (await (await fetch(`${server.url}/runs/${runId}`)).json()) as { status: string };
  return `${run.status}\n${await response.text()}\nruntime errors: ${server.runtime.errors.map(String).join('; ')}`;
}

/** Awaits a run other than `before` on the page, ended (the old run still shows its status until the new one is selected). */
async function newRunEnded(page: Page, before: string | null, timeout?: number): Promise<void> {
  await page.waitForFunction((old) => {
    const run = (globalThis as any).document.querySelector('[data-testid="run"]');
    return run && run.getAttribute('data-run-id') !== old && ['COMPLETED', 'FAILED', 'CANCELLED'].includes(run.getAttribute('data-run-status'));
  }, before, timeout === undefined ? {} : { timeout });
}

describe.skipIf(!hasChromium)('tree page in chromium', () => {
  let server: DevServer;
  let context: BrowserContext;
  let page: Page;
  let profile: string;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    profile = mkdtempSync(join(tmpdir(), 'bs-chromium-'));
    [server, context] = await Promise.all([
      startDevServer({ port: 0 }),
      // A persistent context on a fresh folder is playwright's way to pass --user-data-dir.
      chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: FLAGS,
        viewport: { width: 1440, height: 900 },
      }),
    ]);
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') pageErrors.push(`${message.text()} (${message.location().url})`);
    });
  });

  // Each test answers for the console errors of its own steps.
  beforeEach(() => {
    pageErrors.length = 0;
  });

  afterAll(async () => {
    await context?.close();
    await server?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('starts examples/hierarchical.yaml from the page and shows its tree live until COMPLETED', async () => {
    await page.goto(server.url);
    await page.waitForSelector('[data-testid="live-status"][data-live="live"]');
    await page.selectOption('[data-testid="example-select"]', 'hierarchical.yaml');
    expect(await page.inputValue('[data-testid="scenario-input"]')).toContain('entry: Director');
    await page.click('[data-testid="start-run"]');

    await page.waitForSelector('[data-testid="run"][data-run-status="COMPLETED"]').catch(async (error) => {
      throw new Error(`${error.message}\npage: ${await pageState(page)}\nserver: ${await serverState(server, page)}`);
    });
    const rows = await page.$$eval('[data-testid="branch-row"]', (trs) =>
      trs.map((tr) => ({
        id: tr.getAttribute('data-branch-id'),
        status: tr.getAttribute('data-status'),
        entryAgent: tr.getAttribute('data-entry-agent'),
        agent: tr.getAttribute('data-agent'),
        depth: Number(tr.getAttribute('data-depth')),
        statusText: tr.querySelector('[data-col="status"]')!.textContent,
        started: tr.querySelector('[data-col="started"]')!.textContent,
        duration: tr.querySelector('[data-col="duration"]')!.textContent,
      })),
    );
    expect(rows).toHaveLength(9);
    expect(rows.every((r) => r.status === 'COMPLETED' && r.statusText === 'COMPLETED')).toBe(true);
    expect([...new Set(rows.map((r) => r.entryAgent))].sort()).toEqual(['Director', 'Researcher', 'TeamLead', 'Writer']);
    // Tree order: each lead followed by its three workers; the Writer handed off to the Editor.
    expect(rows.map((r) => r.id)).toEqual(['root', 'root.0', 'root.0.0', 'root.0.1', 'root.0.2', 'root.1', 'root.1.0', 'root.1.1', 'root.1.2']);
    expect(rows.map((r) => r.depth)).toEqual([0, 1, 2, 2, 2, 1, 2, 2, 2]);
    expect(rows.find((r) => r.id === 'root.0.2')).toMatchObject({ entryAgent: 'Writer', agent: 'Editor' });
    expect(rows.every((r) => /^\+\d+\.\d\ds$/.test(r.started!) && /^\d+\.\d\ds$/.test(r.duration!))).toBe(true);

    expect(await page.textContent('[data-testid="run-status"]')).toBe('COMPLETED');
    expect(await page.textContent('[data-metric="totalCreated"] .value')).toBe('9');
    expect(await page.textContent('[data-metric="successRate"] .value')).toBe('100%');
    expect(await page.isHidden('[data-testid="failed-branches"]')).toBe(true);
    expect(await page.textContent('[data-testid="run-result"]')).toContain('"report"');

    // The mermaid text of GET /runs/{id}/tree?format=mermaid, rendered as an svg with 9 nodes.
    await page.waitForSelector('[data-testid="tree-diagram"][data-diagram-status="rendered"] svg');
    expect(await page.locator('[data-testid="tree-diagram"] svg .node').count()).toBe(9);

    // A branch's details: its sync point and the aggregate it was resumed with.
    await page.click('[data-testid="branch-row"][data-branch-id="root.0"]');
    await page.waitForSelector('[data-testid="branch-detail"][data-branch-id="root.0"] [data-testid="sync-point"]');
    const sync = page.locator('[data-testid="branch-detail"] [data-testid="sync-point"]');
    expect(await sync.getAttribute('data-outcome')).toBe('resume');
    expect(await sync.textContent()).toContain('3 succeeded · 0 failed · 0 cancelled of 3');
    expect(await page.textContent('[data-testid="detail-aggregate"]')).toContain('"child_count": 3');

    // The run is listed in the session's runs.
    expect(await page.getAttribute('[data-testid="run-item"]', 'data-status')).toBe('COMPLETED');
    expect(pageErrors).toEqual([]);

    if (SCREENSHOT) mkdirSync(join(SCREENSHOT, '..'), { recursive: true });
    const picture = await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(picture.length).toBeGreaterThan(0);
  });

  it('the example selector follows the run being viewed', async () => {
    await page.selectOption('[data-testid="example-select"]', 'simple-parallel.yaml');
    await page.click('[data-testid="start-run"]');
    await page.waitForSelector('[data-testid="run"][data-run-status="COMPLETED"]');
    await page.waitForSelector('[data-testid="run-item"] >> nth=1');
    const items = page.locator('[data-testid="run-item"]');
    // Newest first: the simple-parallel run, then the hierarchical one of the first test.
    await items.nth(1).click();
    await page.waitForSelector('[data-testid="run"][data-run-status="COMPLETED"]');
    await page.waitForFunction(() => (globalThis as any).document.querySelector('[data-testid="example-select"]').value === 'hierarchical.yaml');
    expect(await page.inputValue('[data-testid="scenario-input"]')).toContain('entry: Director');
    await items.nth(0).click();
    await page.waitForFunction(() => (globalThis as any).document.querySelector('[data-testid="example-select"]').value === 'simple-parallel.yaml');
  });

  it('a one-node tree is drawn node-sized, not stretched to the card', async () => {
    await page.selectOption('[data-testid="example-select"]', '');
    await page.fill('[data-testid="scenario-input"]', 'name: one-node\nentry: A\nagents:\n  A: { kind: script, responses: [ { next_action: final_response, content: done } ] }\n');
    const before = await page.getAttribute('[data-testid="run"]', 'data-run-id');
    await page.click('[data-testid="start-run"]');
    await newRunEnded(page, before);
    await page.waitForSelector('[data-testid="tree-diagram"][data-diagram-status="rendered"] svg');
    const size = await page.$eval('[data-testid="tree-diagram"] svg', (svg: any) => ({
      drawn: svg.getBoundingClientRect().width,
      natural: svg.viewBox.baseVal.width,
      card: svg.parentElement.getBoundingClientRect().width,
    }));
    expect(size.natural).toBeGreaterThan(0);
    expect(size.drawn).toBeLessThanOrEqual(size.natural + 1);
    expect(size.drawn).toBeLessThan(size.card / 2);
  });

  it('shows a large result as a preview, with a note giving its size and a link to the whole value', async () => {
    // 300 children x 2 KB: a 620 KB aggregate as the run's result, past the 64 KB a run view shows.
    const started = await fetch(`${server.url}/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(wideAggregateScenario(300, 2_000)) });
    expect(started.status).toBe(202);
    const { runId } = (await started.json()) as { runId: string };
    await page.goto(`${server.url}/#/runs/${runId}`);
    await page.waitForSelector(`[data-testid="run"][data-run-id="${runId}"][data-run-status="COMPLETED"]`).catch(async (error) => {
      throw new Error(`${error.message}\npage: ${await pageState(page)}\nserver: ${await serverState(server, page)}`);
    });
    const view = (await (await fetch(`${server.url}/runs/${runId}`)).json()) as { resultTruncated: boolean; resultBytes: number };
    expect(view.resultTruncated).toBe(true);
    const note = page.locator('[data-testid="run-result-whole"] [data-testid="result-preview-note"]');
    expect(await note.textContent()).toBe(`A preview: the whole result is ${view.resultBytes.toLocaleString('en-US')} bytes. Open it whole`);
    const href = await note.locator('a').getAttribute('href');
    expect(href).toBe(`/runs/${runId}/branches/root/result`);
    // The preview says what it left out; the link gives the whole value.
    expect(await page.textContent('[data-testid="run-result"]')).toMatch(/"child_count": 300[\s\S]*entries left out/);
    const whole = (await (await fetch(`${server.url}${href}`)).json()) as { result: { results: Record<string, unknown> } };
    expect(Object.keys(whole.result.results)).toHaveLength(300);
    // The root branch's details carry the same note; a child's small result has none.
    await page.click('[data-testid="branch-row"][data-branch-id="root"]');
    await page.waitForSelector('[data-testid="branch-detail"][data-branch-id="root"] [data-testid="result-preview-note"]');
    await page.click('[data-testid="branch-row"][data-branch-id="root.7"]');
    await page.waitForSelector('[data-testid="branch-detail"][data-branch-id="root.7"] [data-testid="detail-result"]');
    expect(await page.locator('[data-testid="branch-detail"] [data-testid="result-preview-note"]').count()).toBe(0);
    expect(pageErrors).toEqual([]);
  });

  it('shows a validation error for a broken pasted scenario without starting a run', async () => {
    await page.selectOption('[data-testid="example-select"]', '');
    await page.fill('[data-testid="scenario-input"]', 'name: broken\nentry: Nobody\nagents:\n  A: { kind: script, responses: [1] }\n');
    const runsListed = async () => ((await (await fetch(`${server.url}/runs`)).json()) as { runs: unknown[] }).runs.length;
    const before = await runsListed();
    expect(await page.locator('[data-testid="run-item"]').count()).toBe(before);
    await page.click('[data-testid="start-run"]');
    const error = await page.waitForSelector('[data-testid="start-error"]:visible');
    // The text docs/dev-server.md quotes.
    expect(await error.textContent()).toBe('error: request: entry: "Nobody" is not one of the agents (A) (field: entry)');
    expect(await runsListed()).toBe(before);
    expect(await page.locator('[data-testid="run-item"]').count()).toBe(before);
    // The browser logs the refused POST /runs, and nothing else.
    expect(pageErrors).toEqual([expect.stringMatching(/status of 400 \(Bad Request\) \(http:\/\/[^)]+\/runs\)$/)]);
  });

  it('every example of examples/ runs from the page and completes (the LLM ones, without a model server, fail saying why)', async () => {
    const files: string[] = await page.$$eval('[data-testid="example-select"] option', (options: any[]) => options.map((o) => o.value).filter(Boolean));
    expect(files.length).toBeGreaterThanOrEqual(9);
    const outcomes: Record<string, string> = {};
    for (const file of files) {
      const before = await page.getAttribute('[data-testid="run"]', 'data-run-id');
      await page.selectOption('[data-testid="example-select"]', file);
      await page.click('[data-testid="start-run"]');
      // A new run on screen, then its end.
      await newRunEnded(page, before, 60_000).catch(async (error) => {
        throw new Error(`${file}: ${error.message}\npage: ${await pageState(page)}\nserver: ${await serverState(server, page)}`);
      });
      const runId = (await page.getAttribute('[data-testid="run"]', 'data-run-id'))!;
      const run = (await (await fetch(`${server.url}/runs/${runId}`)).json()) as { status: string; error: string | null };
      outcomes[file] = run.status === 'COMPLETED' ? 'COMPLETED' : `${run.status}: ${run.error}`;
    }
    // The examples with LLM agents (openai, bedrock) need a model server: without one they fail naming it.
    const examples = ((await (await fetch(`${server.url}/examples`)).json()) as { examples: { file: string; document: { agents: Record<string, { kind: string }> } }[] }).examples;
    const llm = new Set(examples.filter((e) => Object.values(e.document.agents).some((a) => a.kind === 'openai' || a.kind === 'bedrock')).map((e) => e.file));
    expect(llm.has('llm-research.yaml')).toBe(true);
    for (const file of llm) expect(outcomes[file], file).toMatch(/^FAILED: agent \w+ failed: .*127\.0\.0\.1:11434.*ECONNREFUSED/);
    expect(Object.entries(outcomes).filter(([file]) => !llm.has(file))).toEqual(files.filter((f) => !llm.has(f)).map((f) => [f, 'COMPLETED']));
    expect(await page.isHidden('[data-testid="start-error"]')).toBe(true);
  }, 240_000);

  it('lists the callback a run awaits and answers it: a text that is not JSON is refused on the page, the JSON answer resumes the branch', async () => {
    await page.goto(server.url);
    await page.waitForSelector('[data-testid="live-status"][data-live="live"]');
    await page.waitForSelector('[data-testid="example-select"] option[value="approval.yaml"]', { state: 'attached' });
    await page.selectOption('[data-testid="example-select"]', '');
    await page.fill(
      '[data-testid="scenario-input"]',
      'name: page-approval\nentry: A\nagents:\n  A:\n    kind: script\n    responses:\n      - { next_action: wait_for_callback, timeout_seconds: 600, message: "ship it?" }\n      - { next_action: final_response, content: { answer: "$input" } }\n',
    );
    await page.click('[data-testid="start-run"]');
    await page.waitForSelector('[data-testid="callback"][data-branch-id="root"]').catch(async (error) => {
      throw new Error(`${error.message}\npage: ${await pageState(page)}\nserver: ${await serverState(server, page)}`);
    });
    expect(await page.textContent('[data-testid="callback-message"]')).toBe('ship it?');
    await page.fill('[data-testid="callback-answer"]', 'yes please');
    await page.click('[data-testid="callback-send"]');
    await page.waitForSelector('[data-testid="callback-error"]:not([hidden])');
    expect(await page.textContent('[data-testid="callback-error"]')).toMatch(/^the answer is not JSON/);
    await page.fill('[data-testid="callback-answer"]', '{"approved": true}');
    await page.click('[data-testid="callback-send"]');
    await page.waitForSelector('[data-testid="run"][data-run-status="COMPLETED"]');
    expect(JSON.parse((await page.textContent('[data-testid="run-result"]'))!)).toEqual({ answer: { approved: true } });
    expect(await page.isHidden('[data-testid="callbacks"]')).toBe(true);
    expect(pageErrors).toEqual([]);
  });

  it('says in the branch table what a paused branch waits for: a durable wait until its time, a callback until its timeout', async () => {
    await page.goto(server.url);
    await page.waitForSelector('[data-testid="live-status"][data-live="live"]');
    await page.waitForSelector('[data-testid="example-select"] option[value="approval.yaml"]', { state: 'attached' });
    await page.selectOption('[data-testid="example-select"]', '');
    await page.fill(
      '[data-testid="scenario-input"]',
      [
        'name: page-pauses',
        'entry: Lead',
        'agents:',
        '  Lead:',
        '    kind: script',
        '    allowed: [Sleeper, Asker]',
        '    responses:',
        '      - { next_action: parallel_invoke, agents: [Sleeper, Asker], wait_for: any }',
        '      - { next_action: final_response, content: "$input" }',
        '  Sleeper:',
        '    kind: script',
        '    responses: [ { next_action: wait, seconds: 600 }, { next_action: final_response, content: rested } ]',
        '  Asker:',
        '    kind: script',
        '    responses: [ { next_action: wait_for_callback, timeout_seconds: 600 }, { next_action: final_response, content: "$input" } ]',
        '',
      ].join('\n'),
    );
    await page.click('[data-testid="start-run"]');
    const label = (id: string) => `[data-testid="branch-row"][data-branch-id="${id}"] [data-testid="branch-waiting"]`;
    await page.waitForSelector(`${label('root.0')}, ${label('root.1')}`).catch(async (error) => {
      throw new Error(`${error.message}\npage: ${await pageState(page)}\nserver: ${await serverState(server, page)}`);
    });
    await page.waitForSelector(label('root.0'));
    await page.waitForSelector(label('root.1'));
    expect(await page.textContent(label('root.0'))).toMatch(/^waiting until \S/);
    expect(await page.textContent(label('root.1'))).toMatch(/^awaiting a callback until \S/);
    await page.fill('[data-testid="callback-answer"]', '"done"');
    await page.click('[data-testid="callback-send"]');
    await page.waitForSelector('[data-testid="run"][data-run-status="COMPLETED"]');
    // Ended branches wait for nothing: the labels are gone.
    expect(await page.$$('[data-testid="branch-waiting"]')).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
