/**
 * The dashboard at `/`, end to end in a real browser: Debian's Chromium (driven
 * by playwright-core) opens the page, publishes its fake microphone (the speech
 * fixture) over WHIP with the page's own "Talk" button, and sees its own card and
 * that of a second peer sent from Node; stopping yields a recording the page can
 * play and download, and whose sound is the microphone's speech. The server has a publish and an admin token: the page asks
 * for them, then sends them on every call (the event stream included), and plays
 * and downloads recordings through signed links. Its Listen button plays a
 * peer's processed audio over WHEP, and Chromium's stats say it arrives.
 * With more recordings listed than a client may download at once, none is
 * refused (429): players fetch nothing until played. When the server ends the
 * page's own session, the Talk button stops at once and says why.
 *
 * Chromium runs headless with nothing reaching outside the machine
 * (test/helpers/chromium.ts says how, and why ICE works over loopback).
 */
import { copyFile, mkdtemp, readFile, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { envelopeMatch, readWav } from '../helpers/audio.js';
import { fixturePath, readFixture } from '../helpers/fixtures.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { sparseWav } from '../helpers/wav-files.js';
import { launchChromium, pageProblems, playerDuration, signIn } from '../helpers/chromium.js';
import { until } from '../helpers/until.js';

// The README's screenshot is rewritten by `npm run docs` (UPDATE_DOCS=1); a plain test run
// takes it too, into the temp dir, so running the tests never dirties the working tree.
const SCREENSHOT = process.env.UPDATE_DOCS ? join(import.meta.dirname, 'dashboard.png') : join(tmpdir(), `earshot-dashboard-${process.pid}.png`);

const PUBLISH_TOKEN = 'e2e-publish-token';
const ADMIN_TOKEN = 'e2e-admin-token';

const card = (page: Page, peer: string) => page.locator(`[data-testid="peer-card"][data-peer="${peer}"]`);

let t: TestServer | undefined;
let context: BrowserContext | undefined;
let scratchDir: string | undefined;
afterAll(async () => {
  await context?.close();
  await t?.close();
  if (scratchDir) await rm(scratchDir, { recursive: true, force: true });
});

describe('dashboard', () => {
  it('shows both live peers with moving meters and VAD, and the Talk recording plays and downloads as WAV', { timeout: 120_000 }, async () => {
    // The default pipeline (denoise with VAD → WAV recording + stats), with both roles protected.
    t = await startServer({ token: PUBLISH_TOKEN, adminToken: ADMIN_TOKEN });
    // Earlier recordings, more than the 4 downloads a client may run at once (--max-downloads-per-client).
    for (let i = 1; i <= 6; i++) await copyFile(fixturePath('speech-48k.wav'), join(t.recordingsDir, `earlier-call-${i}.wav`));
    // More than the list shows (200), older and first by name: the newest must be listed, not the first names.
    const dayAgo = Date.now() / 1000 - 86_400;
    for (let i = 1; i <= 205; i++) {
      const archived = join(t.recordingsDir, `archive-${String(i).padStart(3, '0')}.wav`);
      await sparseWav(archived, 9600);
      await utimes(archived, dayAgo, dayAgo);
    }
    scratchDir = await mkdtemp(join(tmpdir(), 'earshot-e2e-'));
    const launched = await launchChromium(scratchDir, fixturePath('speech-48k.wav'), { screenshot: true });
    context = launched.context;
    const page = launched.page;
    const problems = pageProblems(page);

    // Without tokens in this tab the page asks for them before it calls anything.
    await signIn(page, `${t.url}/`, { admin: ADMIN_TOKEN, publish: PUBLISH_TOKEN });
    const form = page.getByTestId('token-form');
    await page.locator('[data-testid="connection"][data-state="live"]').waitFor({ timeout: 10_000 });
    // Kept for the tab: a reload does not ask again.
    await page.reload();
    await page.locator('[data-testid="connection"][data-state="live"]').waitFor({ timeout: 10_000 });
    expect(await form.isVisible()).toBe(false);

    // Talk: the page publishes its (fake) microphone over WHIP. Pressed from the keyboard: the button
    // keeps the focus while it is busy (a disabled button dropped it, and Enter could not reach Stop).
    const talk = page.getByTestId('talk-button');
    await talk.focus();
    await page.keyboard.press('Enter');
    const mine = page.locator('[data-testid="peer-card"].mine');
    await mine.waitFor({ timeout: 15_000 });
    const me = (await mine.getAttribute('data-peer'))!;
    expect(me).toMatch(/^web-[0-9a-f]{8}$/);
    await card(page, me).locator('[data-testid="peer-state"]').filter({ hasText: 'connected' }).waitFor({ timeout: 15_000 });
    await page.locator('[data-testid="talk-button"][data-state="live"]').waitFor({ timeout: 10_000 });
    expect(await talk.evaluate((button) => (button.ownerDocument as unknown as { activeElement: unknown }).activeElement === button)).toBe(true);
    // Named for a screen reader.
    expect(await card(page, me).getAttribute('aria-label')).toBe(`Peer ${me}`);

    // A second peer from Node shows up as its own card while it streams.
    // Sends until the screenshot of both cards is taken: a fixed 4 s ended before it on a slow host.
    const stopBot = new AbortController();
    const bot = sendAudio({ url: `${t.url}/whip/e2e/bot`, source: fixturePath('tone-1k-48k.wav'), seconds: 60, loop: true, token: PUBLISH_TOKEN, signal: stopBot.signal });
    try {
      await card(page, 'bot').waitFor({ timeout: 10_000 });

      // The level meter moves (the speech's RMS over the last second changes) and VAD lights up.
      const level = card(page, me).getByTestId('level');
      const levels = new Set<string>();
      await until('three different RMS readings on the Talk card', async () => {
        const rms = await level.getAttribute('data-rms');
        if (rms && Number(rms) > -120) levels.add(rms);
        return levels.size >= 3 ? true : undefined;
      });
      await card(page, me).locator('[data-testid="speaking"][data-active="true"]').waitFor({ timeout: 10_000 });
      // The sparklines are named with what they show (a chart a screen reader skipped left its <dd> empty).
      const sparkNames = await Promise.all(['loss-spark', 'jitter-spark'].map((id) => card(page, me).getByTestId(id).getAttribute('aria-label')));
      expect(sparkNames[0]).toMatch(/^Loss, last \d+ s: highest \d+(\.\d+)? %, now \d+(\.\d+)? %$/);
      expect(sparkNames[1]).toMatch(/^Jitter, last \d+ s: highest \d+(\.\d+)? ms, now \d+(\.\d+)? ms$/);
      expect(await card(page, me).getByRole('img', { name: /^Loss, last/ }).count()).toBe(1);
      // The load tiles: the workers' recent share (between two figures); with admission off (as this
      // test's server runs), the event-loop lag since start, labelled so, instead of admission's main-thread share.
      await until('the load tiles to read their figures', async () => {
        const [pool, label, lag] = await Promise.all([page.getByTestId('tile-pool').textContent(), page.getByTestId('tile-lag-label').textContent(), page.getByTestId('tile-lag').textContent()]);
        if (/^\d+ %$/.test(pool ?? '') && label === 'Event-loop lag p99 (since start)' && /^\d+(\.\d+)? ms$/.test(lag ?? '')) return true;
        throw new Error(`the tiles read ${JSON.stringify([pool, label, lag])}`);
      });

      // Listen (WHEP): the page plays its own card's processed audio; Chromium's own WebRTC
      // stats (inbound-rtp, shown on the card) say packets and sound arrive.
      const listenCard = card(page, me);
      await listenCard.getByTestId('listen-button').click();
      const listenStatus = listenCard.getByTestId('listen-status');
      const heard = await until('the listener to receive 50 packets with sound', async () => {
        const packets = Number((await listenStatus.getAttribute('data-packets')) ?? 0);
        const level = Number((await listenStatus.getAttribute('data-level')) || 0);
        return packets >= 50 && level > 0.001 ? { packets, level } : undefined;
      }, 20_000);
      expect(heard.packets).toBeGreaterThanOrEqual(50);
      await listenCard.getByTestId('listen-button').click();
      await listenStatus.waitFor({ state: 'hidden', timeout: 5000 });
      expect(await listenCard.getByTestId('listen-button').textContent()).toBe('Listen');
      // Ended by the server (here a DELETE from another client): the card stops listening at once, from
      // the DTLS close_notify, not when Chromium's connection fails 15–20 s later.
      const posted = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname.startsWith('/whep/'));
      await listenCard.getByTestId('listen-button').click();
      const location = new URL((await (await posted).headerValue('location'))!, t.url).href;
      const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
      await until('the listener to connect', async () => {
        const { server } = (await (await fetch(`${t!.url}/stats`, { headers: admin })).json()) as { server: { listeners: Array<{ peer: string; state: string }> } };
        return server.listeners.some((l) => l.peer === me && l.state === 'connected') ? true : undefined;
      }, 20_000);
      expect((await fetch(location, { method: 'DELETE', headers: admin })).status).toBe(200);
      await listenStatus.waitFor({ state: 'hidden', timeout: 5000 });
      expect(await listenCard.getByTestId('listen-button').textContent()).toBe('Listen');

      // Both cards with sound on them, for the README.
      await until('audio on the bot card', async () => {
        const rms = await card(page, 'bot').getByTestId('level').getAttribute('data-rms');
        return rms && Number(rms) > -120 ? true : undefined;
      });
      await page.screenshot({ path: SCREENSHOT });
    } finally {
      stopBot.abort();
      await bot.catch(() => undefined);
    }

    // Stop, from the keyboard: the session ends, its recording appears with a player and a download link.
    await talk.focus();
    await page.keyboard.press('Enter');
    await page.locator('[data-testid="talk-button"][data-state="idle"]').waitFor({ timeout: 10_000 });
    // data-live="false": the page knows the file is finalized (its header has the final length).
    const row = page.locator(`[data-testid="recording-row"][data-name*="${me}"][data-live="false"]`);
    await row.waitFor({ timeout: 10_000 });
    // The player fetches nothing until played (muted here: the page has had the user's clicks).
    const rowName = (await row.getAttribute('data-name'))!;
    expect([await row.getByTestId('recording-download').getAttribute('aria-label'), await row.getByTestId('recording-audio').getAttribute('aria-label')]).toEqual([`Download ${rowName}`, `Play ${rowName}`]);
    const duration = await playerDuration(row);
    expect(duration).toBeGreaterThan(0);
    expect(Number.isFinite(duration)).toBe(true);

    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 10_000 }), row.getByTestId('recording-download').click()]);
    const saved = join(scratchDir, 'download.wav');
    await download.saveAs(saved);
    const bytes = await readFile(saved);
    expect(bytes.length).toBeGreaterThan(44);
    expect(bytes.toString('latin1', 0, 4)).toBe('RIFF');
    expect(bytes.toString('latin1', 8, 12)).toBe('WAVE');
    const wav = await readWav(saved);
    expect(wav.sampleRate).toBe(48000);
    expect(wav.durationSec).toBeGreaterThan(0);
    // The download is the server's recording, byte for byte.
    const name = (await row.getAttribute('data-name'))!;
    expect(bytes.equals(await readFile(join(t.recordingsDir, name)))).toBe(true);
    // And the recording is the microphone's speech: its 20 ms loudness contour follows the
    // fixture's (which the fake microphone loops from an unknown point) at the same level.
    // Measured: correlation 0.98 and +0.4 dB; against another fixture (pink noise) 0.17.
    expect(wav.durationSec).toBeGreaterThan(1);
    const match = envelopeMatch(wav.channels[0], (await readFixture('speech-48k.wav')).channels[0], 48000);
    expect(match.correlation).toBeGreaterThan(0.8);
    expect(Math.abs(match.levelDifferenceDb)).toBeLessThan(6);

    // The hint for publishing names this server, as the page reached it.
    expect(await page.getByTestId('send-hint').textContent()).toBe(`npx earshot send file.wav --url ${t.url}/whip/room/peer`);

    // Every earlier recording is listed, and the page fetched none of them (no player preloads).
    expect(await page.locator('[data-testid="recording-row"][data-name^="earlier-call-"]').count()).toBe(6);

    // The server ends the page's session: Talk stops at once and says so, not "Live" until ICE fails.
    await talk.click();
    const again = page.locator('[data-testid="talk-button"][data-state="live"]');
    await again.waitFor({ timeout: 15_000 });
    const mine2 = page.locator('[data-testid="peer-card"].mine');
    await mine2.waitFor({ timeout: 15_000 });
    const peer2 = (await mine2.getAttribute('data-peer'))!;
    const stats = (await (await fetch(`${t.url}/stats/${peer2}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { session: string };
    const ended = await fetch(`${t.url}/whip/sessions/${stats.session}`, { method: 'DELETE', headers: { authorization: `Bearer ${PUBLISH_TOKEN}` } });
    expect(ended.status).toBe(200);
    await page.locator('[data-testid="talk-button"][data-state="idle"]').waitFor({ timeout: 5000 });
    expect(await page.getByTestId('talk-status').textContent()).toBe('The server ended this session (deleted); the recording is below.');

    expect(problems).toEqual([]);

    // An outage: the server goes away. The page says so, dims the figures it can no longer
    // update, and counts its repeated failure in one line of the log (every 2 s) rather than
    // pushing the sessions' history out.
    await t.server.close();
    await page.locator('[data-testid="connection"][data-state="connecting"]').waitFor({ timeout: 10_000 });
    await until('the tiles and cards to dim', async () => {
      // The page's own getComputedStyle (this file is type-checked without the DOM library).
      const opacityOf = (el: unknown) => Number((globalThis as unknown as { getComputedStyle(e: unknown): { opacity: string } }).getComputedStyle(el).opacity);
      const opacity = await page.locator('.tiles').evaluate(opacityOf);
      const cards = await page.getByTestId('peers').evaluate(opacityOf);
      return opacity < 0.6 && cards < 0.6 ? true : undefined;
    }, 5000);
    const failures = page.locator('[data-testid="log"] li[data-text^="events:"]');
    await until('three failed reconnections counted in one line', async () => Number((await failures.first().getAttribute('data-count')) ?? 1) >= 3 || undefined, 15_000);
    // The stream's own end may have a line of its own before the reconnections' repeated one.
    const texts = await failures.evaluateAll((els) => els.map((el) => (el as unknown as { dataset: { text: string } }).dataset.text));
    expect(new Set(texts).size, texts.join(' | ')).toBe(texts.length);
    expect(await failures.first().textContent()).toMatch(/\(×[3-9]\)$/);
    // The session history is still there under it.
    expect(await page.locator('[data-testid="log"] li.ended').count()).toBeGreaterThan(1);
  });
});

describe('dashboard on a server that guards only publishing', () => {
  it('asks for the publish token when Talk needs it, and takes it alone (the admin field may stay empty)', { timeout: 90_000 }, async () => {
    // No admin token: the admin API is open on loopback, publishing needs its token.
    const server = await startServer({ token: PUBLISH_TOKEN });
    const dir = await mkdtemp(join(tmpdir(), 'earshot-e2e-publish-'));
    const { context: browser, page } = await launchChromium(dir, fixturePath('speech-48k.wav'));
    try {
      await page.goto(`${server.url}/`);
      await page.locator('[data-testid="connection"][data-state="live"]').waitFor({ timeout: 10_000 });
      const form = page.getByTestId('token-form');
      expect(await form.isVisible()).toBe(false);
      await page.getByTestId('talk-button').click();
      await form.waitFor({ state: 'visible', timeout: 10_000 });
      // Nothing entered: the form says what it needs and stays.
      await page.getByTestId('token-submit').click();
      expect(await page.getByTestId('token-error').textContent()).toBe('Enter the admin token, the publish token, or both.');
      expect(await form.isVisible()).toBe(true);
      await page.getByTestId('publish-token').fill(PUBLISH_TOKEN);
      await page.getByTestId('token-submit').click();
      await form.waitFor({ state: 'hidden', timeout: 5000 });
      await page.locator('[data-testid="talk-button"][data-state="live"]').waitFor({ timeout: 15_000 });
      const mine = page.locator('[data-testid="peer-card"].mine');
      await mine.waitFor({ timeout: 15_000 });
      // The open admin API still answers without a token: statistics of the page's own peer.
      const me = (await mine.getAttribute('data-peer'))!;
      expect((await fetch(`${server.url}/stats/${me}`)).status).toBe(200);
    } finally {
      await browser.close();
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("dashboard's recording links", () => {
  it('are renewed before they expire: a page left open keeps links that open their files', { timeout: 90_000 }, async () => {
    // Links that last 12 s: the page lists again after 80 % of that (10 s at least).
    const server = await startServer({ token: PUBLISH_TOKEN, adminToken: ADMIN_TOKEN, downloadLinkSeconds: 12 });
    const dir = await mkdtemp(join(tmpdir(), 'earshot-e2e-links-'));
    const { context: browser, page } = await launchChromium(dir, fixturePath('speech-48k.wav'));
    try {
      await copyFile(fixturePath('tone-1k-48k.wav'), join(server.recordingsDir, 'kept-open.wav'));
      await signIn(page, `${server.url}/`, { admin: ADMIN_TOKEN, publish: PUBLISH_TOKEN });
      const row = page.locator('[data-testid="recording-row"][data-key="kept-open.wav"]');
      await row.waitFor({ timeout: 10_000 });
      const first = (await row.getAttribute('data-url'))!;
      const expiresOf = (url: string) => Number(/expires=(\d+)/.exec(url)?.[1]);
      await until('a renewed link', async () => {
        const now = (await row.getAttribute('data-url'))!;
        return expiresOf(now) > expiresOf(first) ? now : undefined;
      }, 20_000, 250).then(async (renewed) => {
        // The renewed link opens the file without a token, after the first one has expired.
        await until('the first link to expire', () => (Date.now() / 1000 > expiresOf(first) + 1 ? true : undefined), 20_000, 250);
        expect((await fetch(new URL(first, server.url))).status).toBe(401);
        const res = await fetch(new URL(renewed, server.url));
        expect(res.status).toBe(200);
        expect((await res.arrayBuffer()).byteLength).toBe(288_044);
        expect(await row.locator('a').getAttribute('href')).toBe(renewed);
      });
    } finally {
      await browser.close();
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
