/** What the browser tests share: Debian's chromium, its flags, and the page's state for messages. */
import { existsSync } from 'node:fs';
import type { Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
// Without these the closed network floods a headless chromium with refused connections.
export const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
export const hasChromium = existsSync(CHROMIUM);

/** What the page says, to explain a wait that timed out. */
export async function pageState(page: Page): Promise<string> {
  return page.evaluate(() => {
    // Runs in the page (the test's tsconfig has no DOM types).
    const document = (globalThis as any).document;
    const run = document.querySelector('[data-testid="run"]');
    return JSON.stringify({
      runId: run?.getAttribute('data-run-id'),
      runStatus: run?.getAttribute('data-run-status'),
      live: document.querySelector('[data-testid="live-status"]')?.getAttribute('data-live'),
      rows: [...document.querySelectorAll('[data-testid="branch-row"]')].map((r: any) => `${r.getAttribute('data-branch-id')}:${r.getAttribute('data-status')}`),
      errors: [...document.querySelectorAll('.error')].map((e: any) => e.textContent).filter(Boolean),
    });
  });
}
