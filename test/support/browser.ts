/// <reference lib="dom" />
// Debian's Chromium driven by playwright-core, as the browser tests use it: the machine's flags for
// a closed network (no background fetches, no component updates, no QUIC), a fresh profile
// directory removed afterwards, and screenshots saved under test-artifacts/ for a person to look at.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.LEAKWATCH_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS_DIR = join(process.cwd(), 'test-artifacts', 'web');

export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Why browser tests cannot run here, or null when they can. */
export function browserUnavailable(): string | null {
  if (!existsSync(CHROMIUM_PATH)) return `Chromium not found at ${CHROMIUM_PATH} (apt-get install chromium; .ci/run does)`;
  return null;
}

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** Console errors and page errors seen so far (CSP violations show up here). */
  errors: string[];
  screenshot(name: string): Promise<string>;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'leakwatch-chromium-'));
  let context: BrowserContext;
  try {
    // launchPersistentContext passes the fresh profile as --user-data-dir.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1280, height: 900 },
      acceptDownloads: true,
    });
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  return {
    context,
    page,
    errors,
    async screenshot(name) {
      const path = join(ARTIFACTS_DIR, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    },
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Pixels of a canvas: how many are drawn at all, and how many are close to a colour. */
export async function canvasPixels(page: Page, selector: string, rgb: [number, number, number]): Promise<{ drawn: number; matching: number; total: number }> {
  return page.$eval(
    selector,
    (el, want) => {
      const canvas = el as HTMLCanvasElement;
      const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      let drawn = 0;
      let matching = 0;
      for (let i = 0; i < data.length; i += 4) {
        const [r, g, b, a] = [data[i]!, data[i + 1]!, data[i + 2]!, data[i + 3]!];
        if (a > 0 && !(r > 245 && g > 245 && b > 245)) drawn++;
        if (a > 200 && Math.abs(r - want[0]) < 30 && Math.abs(g - want[1]) < 30 && Math.abs(b - want[2]) < 30) matching++;
      }
      return { drawn, matching, total: data.length / 4 };
    },
    rgb,
  );
}

/** Open the page fresh (no token kept from an earlier test) and sign in with `token`. */
export async function signIn(page: Page, url: string, token: string): Promise<void> {
  await page.goto(url + '/');
  await page.evaluate(() => sessionStorage.clear());
  await page.reload();
  await page.fill('[data-testid=token-input]', token);
  await page.click('[data-testid=signin-button]');
  await page.waitForSelector('[data-testid=live-state]');
}
