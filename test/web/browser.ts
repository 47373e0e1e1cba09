/**
 * Debian's chromium, headless, driven by playwright-core (which downloads no browser of its own), and the
 * screenshots the page tests take: into the test's temporary folder, or into docs/ when
 * SEARCH_R3_SCREENSHOTS=docs (npm run screenshots).
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { type Browser, type Page, chromium } from 'playwright-core';
import { repoRoot } from '../helpers/repo.js';

export const CHROMIUM = process.env.SEARCH_R3_CHROMIUM ?? '/usr/bin/chromium';

/** Why the browser tests cannot run here, or false: only a missing chromium skips them. */
export const noBrowser: string | false = existsSync(CHROMIUM)
  ? false
  : `no chromium at ${CHROMIUM}: bash scripts/setup.sh installs Debian's (or set SEARCH_R3_CHROMIUM)`;

export function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true });
}

/** A page that fails the test on any error the page's own scripts throw. */
export async function openPage(browser: Browser, errors: string[]): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (e) => errors.push(e.message));
  return page;
}

/** `fullPage` false: the first screenful only. */
export async function screenshot(page: Page, name: string, scratch: string, fullPage = true): Promise<string> {
  const dir = process.env.SEARCH_R3_SCREENSHOTS === 'docs' ? path.join(repoRoot, 'docs') : scratch;
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  await page.screenshot({ path: file, fullPage });
  return file;
}
