/**
 * Debian's Chromium for the dashboard's end-to-end tests, driven by
 * playwright-core: headless, nothing reaching outside the machine, a fake
 * microphone playing a WAV file in a loop.
 *
 * WebRTC between headless Chromium and a test server over loopback: the test
 * servers are ICE-lite and announce only 127.0.0.1. The page calls
 * getUserMedia first, so Chromium exposes real host addresses instead of mDNS
 * names — and an ICE-lite server answers connectivity checks from whatever
 * source address they come, so the browser's own candidates do not have to be
 * reachable anyway. What matters is that Chromium has a socket that can reach
 * 127.0.0.1: by default it gathers only on non-loopback interfaces (which
 * happens to work while the machine has one, since Linux routes a packet from
 * eth0's address to 127.0.0.1 over `lo`), and on a machine or container with
 * only `lo` it gathers nothing and never connects.
 * `--allow-loopback-in-peer-connection` lets it gather on 127.0.0.1 too, so the
 * tests work on both (checked with `unshare -n`). No STUN server is
 * configured, and `--host-resolver-rules` makes every name but localhost
 * unresolvable, so nothing leaves the machine.
 *
 * Chromium is required: when it is missing the tests fail and say how to
 * install it (`.ci/run` does).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Locator, type Page } from 'playwright-core';

export const CHROMIUM = process.env.EARSHOT_CHROMIUM ?? '/usr/bin/chromium';

/** Throws, saying how to install it, when Chromium is not there. */
export function requireChromium(): void {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is needed for the dashboard tests and was not found at ${CHROMIUM}. Install it with ` +
        '`sudo apt-get install -y --no-install-recommends chromium` (.ci/run does) or point EARSHOT_CHROMIUM at a Chromium binary.',
    );
  }
}

export function chromiumArgs(microphoneWav: string): string[] {
  return [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
    // Gather ICE candidates on loopback too (see the file comment).
    '--allow-loopback-in-peer-connection',
    // A microphone without a permission prompt, playing the file in a loop.
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${microphoneWav}`,
  ];
}

/** Chromium with a fresh profile under `dir`, its microphone playing `microphoneWav`. */
export async function launchChromium(dir: string, microphoneWav: string, options: { screenshot?: boolean } = {}): Promise<{ context: BrowserContext; page: Page }> {
  requireChromium();
  const context = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: chromiumArgs(microphoneWav),
    ...(options.screenshot ? { viewport: { width: 1280, height: 800 }, colorScheme: 'dark' as const } : {}),
    acceptDownloads: true,
    timeout: 20_000,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return { context, page };
}

/** Opens the dashboard at `url` in a tab without tokens: the page asks for them before it calls anything; they are entered. */
export async function signIn(page: Page, url: string, tokens: { admin: string; publish: string }): Promise<void> {
  await page.goto(url);
  const form = page.getByTestId('token-form');
  await form.waitFor({ state: 'visible', timeout: 10_000 });
  await page.getByTestId('admin-token').fill(tokens.admin);
  await page.getByTestId('publish-token').fill(tokens.publish);
  await page.getByTestId('token-submit').click();
  await form.waitFor({ state: 'hidden', timeout: 5000 });
}

/** Collects what a page reports going wrong: console errors, uncaught errors, and 429 responses. */
export function pageProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('response', (r) => {
    if (r.status() === 429) problems.push(`429: ${r.url()}`);
  });
  return problems;
}

/** The part of HTMLMediaElement the tests read (tsconfig has no DOM lib). */
export interface MediaElement {
  readyState: number;
  duration: number;
  muted: boolean;
  error: { code: number; message: string } | null;
  addEventListener(type: string, listener: () => void): void;
  play(): Promise<void>;
  pause(): void;
}

/** Plays a recording row's player (muted) until it knows its duration, and returns it in seconds. */
export function playerDuration(row: Locator): Promise<number> {
  return row.getByTestId('recording-audio').evaluate(
    (el) =>
      new Promise<number>((resolve, reject) => {
        const audio = el as unknown as MediaElement;
        audio.addEventListener('loadedmetadata', () => {
          audio.pause();
          resolve(audio.duration);
        });
        audio.muted = true;
        audio.play().catch(reject);
        audio.addEventListener('error', () => reject(new Error(`audio error ${audio.error?.code}: ${audio.error?.message}`)));
        setTimeout(() => reject(new Error('no loadedmetadata within 5 s')), 5000);
      }),
  );
}
