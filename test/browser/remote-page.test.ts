/**
 * `dev --api`: the tree page in chromium against the rehearsed stack's API (which verifies SigV4):
 * the page's calls are signed by the local server, never by the browser. Starts
 * examples/hierarchical.yaml from the page, watches it to its end, opens a branch, and cancels a
 * run that would never end; awaits the page's own states (no sleeps).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRemoteDevServer, type RemoteDevServer } from '../../local/dev/remote-dev-server';
import { startRehearsedApi, type RehearsedApi } from '../../local/rehearsal/rehearse-up';
import { synthesize } from '../../local/rehearsal/synth';
import { CHROMIUM, CHROMIUM_FLAGS as FLAGS, hasChromium, pageState } from '../support/browser';

if (!hasChromium) console.warn(`dev --api browser test skipped: ${CHROMIUM} is absent (apt-get install -y chromium)`);

describe.skipIf(!hasChromium)('dev --api: the tree page against a rehearsed stack', () => {
  let api: RehearsedApi;
  let server: RemoteDevServer;
  let context: BrowserContext;
  let page: Page;
  let profile: string;
  const saved = { ...process.env };
  const home = mkdtempSync(join(tmpdir(), 'remote-page-'));
  const pageErrors: string[] = [];
  const serverErrors: unknown[] = [];
  const browserRequests: Record<string, string>[] = [];

  beforeAll(async () => {
    profile = mkdtempSync(join(tmpdir(), 'bs-chromium-'));
    api = await startRehearsedApi({ assembly: await synthesize(), maxContainers: 4 });
    delete process.env.AWS_PROFILE;
    delete process.env.AWS_SESSION_TOKEN;
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: api.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: api.credentials.secretAccessKey, BRANCH_SPAWNER_HOME: home });
    server = await startRemoteDevServer({
      target: { api: api.url, region: api.region },
      examplesDir: join(import.meta.dirname, '..', '..', 'examples'),
      pollMs: 250,
      onError: (error) => serverErrors.push(error),
    });
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1440, height: 900 } });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('request', (request) => browserRequests.push(request.headers()));
  }, 900_000);

  afterAll(async () => {
    await context?.close();
    await server?.close();
    await api?.close();
    process.env = saved;
    for (const dir of [profile, home]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('starts examples/hierarchical.yaml on the stack, shows it live until COMPLETED, opens a branch', async () => {
    await page.goto(server.url);
    await page.waitForSelector('[data-testid="live-status"][data-live="live"]').catch(async (error) => {
      throw new Error(`${error.message}\npage: ${await pageState(page)}`);
    });
    await page.selectOption('[data-testid="example-select"]', 'hierarchical.yaml');
    await page.click('[data-testid="start-run"]');
    // The rehearsed stack is slow on a loaded machine (every function in its own worker thread).
    await page.waitForSelector('[data-testid="run"][data-run-status="COMPLETED"]', { timeout: 300_000 }).catch(async (error) => {
      throw new Error(`${error.message}\npage: ${await pageState(page)}\nserver errors: ${serverErrors.map(String).join('; ')}`);
    });
    const rows = await page.$$eval('[data-testid="branch-row"]', (trs) => trs.map((tr) => `${tr.getAttribute('data-branch-id')}:${tr.getAttribute('data-status')}`));
    expect(rows).toEqual(['root', 'root.0', 'root.0.0', 'root.0.1', 'root.0.2', 'root.1', 'root.1.0', 'root.1.1', 'root.1.2'].map((id) => `${id}:COMPLETED`));
    expect(await page.textContent('[data-metric="totalCreated"] .value')).toBe('9');
    await page.waitForSelector('[data-testid="tree-diagram"][data-diagram-status="rendered"] svg');

    await page.click('[data-testid="branch-row"][data-branch-id="root.0"]');
    await page.waitForSelector('[data-testid="branch-detail"][data-branch-id="root.0"] [data-testid="sync-point"]');
    expect(await page.textContent('[data-testid="branch-detail"] [data-testid="sync-point"]')).toContain('3 succeeded · 0 failed · 0 cancelled of 3');
    expect(await page.getAttribute('[data-testid="run-item"]', 'data-status')).toBe('COMPLETED');
  }, 600_000);

  it('cancels a run on the stack from the page', async () => {
    await page.selectOption('[data-testid="example-select"]', '');
    await page.fill('[data-testid="scenario-input"]', 'name: stuck\nentry: A\nagents:\n  A: { kind: script, responses: [ { $hang: true, next_action: final_response, content: never } ] }\n');
    await page.click('[data-testid="start-run"]');
    await page.waitForSelector('[data-testid="run"][data-run-status="RUNNING"]', { timeout: 240_000 });
    await page.click('[data-testid="cancel-run"]');
    await page.waitForSelector('[data-testid="run"][data-run-status="CANCELLED"]', { timeout: 240_000 });
  }, 600_000);

  it('the browser never held a credential, and nothing failed', () => {
    const secret = api.credentials.secretAccessKey;
    expect(browserRequests.length).toBeGreaterThan(10);
    expect(browserRequests.every((h) => !h.authorization && !JSON.stringify(h).includes(secret))).toBe(true);
    expect(pageErrors).toEqual([]);
    expect(serverErrors).toEqual([]);
  });
});
