/**
 * The dashboard on a node of a cluster, in a real browser: two real nodes
 * (`earshot serve --cluster`, each a front and one engine process) on a real
 * redis-server, Debian's Chromium opening the page of the first node. A bot
 * publishes through that node and runs there; the page's Talk session then
 * goes to the other node (placement: the fewest sessions). The page must show
 * both peers with the node each runs on, log the other node's session, play
 * and download the Talk recording that the other node wrote (through the
 * page's node, by a signed link), and stop Talk when the other node ends the
 * session.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { envelopeMatch, readWav } from '../helpers/audio.js';
import { launchChromium, pageProblems, playerDuration, requireChromium, signIn } from '../helpers/chromium.js';
import { fixturePath, readFixture } from '../helpers/fixtures.js';
import { until } from '../helpers/until.js';
import type { CliServer } from '../cluster/cli-server.js';
import { clusterViews, startNodes, stopNodes, type ClusterPeer } from '../cluster/cluster-api.js';
import { startRedis, type TestRedis } from '../cluster/redis-server.js';

const PUBLISH = 'publish-token-for-the-cluster-dashboard';
const ADMIN = 'admin-token-for-the-cluster-dashboard';
const admin = { authorization: `Bearer ${ADMIN}` };
const { get, nodesSeenBy, livePeer } = clusterViews(admin);

let redis: TestRedis | undefined;
const nodes: CliServer[] = [];
let context: BrowserContext | undefined;
let scratchDir: string | undefined;
afterAll(async () => {
  await context?.close();
  await stopNodes(nodes);
  await redis?.kill();
  if (scratchDir) await rm(scratchDir, { recursive: true, force: true });
});

const card = (page: Page, peer: string) => page.locator(`[data-testid="peer-card"][data-peer="${peer}"]`);
const selfOf = async (node: CliServer) => (await get<{ self: string }>(node, '/cluster/nodes')).self;

describe('the dashboard on a cluster node', () => {
  it('shows every node’s peers and recordings, and plays the Talk recording another node wrote', { timeout: 180_000 }, async () => {
    requireChromium();
    redis = await startRedis();
    const args = ['--cluster', redis.url, '--processes', '1', '--threads', '1', '--pipeline', 'raw', '--token', PUBLISH, '--admin-token', ADMIN];
    await startNodes([args, args], nodes);
    const [a, b] = nodes;
    await until('both nodes to see each other', async () => ((await nodesSeenBy(a)).length === 2 && (await nodesSeenBy(b)).length === 2) || undefined, 30_000);
    const [idA, idB] = [await selfOf(a), await selfOf(b)];

    // A bot through node A runs on A (between equal nodes, the one asked wins).
    const stopBot = new AbortController();
    const bot = sendAudio({ url: `${a.url}/whip/e2e/bot`, source: fixturePath('tone-1k-48k.wav'), loop: true, token: PUBLISH, signal: stopBot.signal });
    try {
      expect((await livePeer(a, 'bot')).node).toBe(idA);
      // Once the registry says A runs one session (its heartbeat), every node places the next one on B.
      await until('node A to count its session', async () => ((await nodesSeenBy(b)).find((n) => n.id === idA)?.sessions === 1) || undefined, 10_000);

      scratchDir = await mkdtemp(join(tmpdir(), 'earshot-e2e-cluster-'));
      const launched = await launchChromium(scratchDir, fixturePath('speech-48k.wav'));
      context = launched.context;
      const page = launched.page;
      const problems = pageProblems(page);
      await signIn(page, `${a.url}/`, { admin: ADMIN, publish: PUBLISH });
      const connection = page.locator('[data-testid="connection"][data-state="live"]');
      await connection.waitFor({ timeout: 10_000 });
      expect(await connection.textContent()).toBe('live · 2 nodes');

      // The bot's card says it runs on this node.
      await card(page, 'bot').waitFor({ timeout: 10_000 });
      expect(await card(page, 'bot').getByTestId('peer-node').textContent()).toBe(` · node ${idA} (this one)`);

      // Talk: placed on node B, and shown with its node and moving level, as a peer of this node would be.
      const talk = page.getByTestId('talk-button');
      await talk.click();
      const mine = page.locator('[data-testid="peer-card"].mine');
      await mine.waitFor({ timeout: 15_000 });
      const me = (await mine.getAttribute('data-peer'))!;
      expect((await livePeer(a, me)).node).toBe(idB);
      expect(await card(page, me).getByTestId('peer-node').textContent()).toBe(` · node ${idB}`);
      await card(page, me).locator('[data-testid="peer-state"]').filter({ hasText: 'connected' }).waitFor({ timeout: 15_000 });
      const levels = new Set<string>();
      await until('three different RMS readings on the Talk card', async () => {
        const rms = await card(page, me).getByTestId('level').getAttribute('data-rms');
        if (rms && Number(rms) > -120) levels.add(rms);
        return levels.size >= 3 || undefined;
      });
      // Node A's own events do not carry B's sessions: the page logs them from the cluster's view.
      await page.locator(`[data-testid="log"] li[data-text="${me} in dashboard started on node ${idB}"]`).waitFor({ timeout: 5000 });
      // Its recording is listed while B writes it.
      await page.locator(`[data-testid="recording-row"][data-name*="${me}"][data-live="true"]`).waitFor({ timeout: 10_000 });

      // Stop: the recording node B wrote is below, final, and plays and downloads through node A.
      await talk.click();
      await page.locator('[data-testid="talk-button"][data-state="idle"]').waitFor({ timeout: 10_000 });
      expect(await page.getByTestId('talk-status').textContent()).toBe('Stopped; the recording is below.');
      const row = page.locator(`[data-testid="recording-row"][data-name*="${me}"][data-live="false"]`);
      await row.waitFor({ timeout: 10_000 });
      expect(await row.locator('.recording-meta').textContent()).toContain(`node ${idB}`);
      const duration = await playerDuration(row);
      expect(duration).toBeGreaterThan(1);
      const [download] = await Promise.all([page.waitForEvent('download', { timeout: 10_000 }), row.getByTestId('recording-download').click()]);
      const saved = join(scratchDir, 'download.wav');
      await download.saveAs(saved);
      const name = (await row.getAttribute('data-name'))!;
      const bytes = await readFile(saved);
      expect(bytes.equals(await readFile(join(b.recordingsDir, name)))).toBe(true);
      const wav = await readWav(saved);
      expect(Math.abs(wav.durationSec - duration)).toBeLessThan(0.1);
      // The microphone's speech (the raw pipeline keeps it as sent): its loudness contour follows the fixture's.
      const match = envelopeMatch(wav.channels[0], (await readFixture('speech-48k.wav')).channels[0], 48000);
      expect(match.correlation).toBeGreaterThan(0.8);
      expect(Math.abs(match.levelDifferenceDb)).toBeLessThan(6);
      await page.locator(`[data-testid="log"] li[data-text="${me} in dashboard ended on node ${idB}"]`).waitFor({ timeout: 5000 });

      // The bot's recording on node A is listed beside it, with its node.
      const botRow = page.locator('[data-testid="recording-row"][data-name*="bot"]');
      await botRow.waitFor({ timeout: 5000 });
      expect(await botRow.locator('.recording-meta').textContent()).toContain(`node ${idA}`);

      // Node B ends the page's next session (a DELETE through node A): Talk stops without waiting for ICE.
      // Placed on B again once A sees B free (B's heartbeat after the first session ended): before, B still
      // counted it, the two tied, and a tie goes to the node asked, A.
      await until('node A to see node B free', async () => ((await nodesSeenBy(a)).find((n) => n.id === idB)?.sessions === 0) || undefined, 10_000);
      await talk.click();
      await page.locator('[data-testid="talk-button"][data-state="live"]').waitFor({ timeout: 15_000 });
      const mine2 = page.locator(`[data-testid="peer-card"].mine:not([data-peer="${me}"])`);
      await mine2.waitFor({ timeout: 15_000 });
      const second = await livePeer(a, (await mine2.getAttribute('data-peer'))!);
      expect(second.node).toBe(idB);
      const ended = await fetch(`${a.url}/whip/sessions/${second.session}`, { method: 'DELETE', headers: { authorization: `Bearer ${PUBLISH}` } });
      expect(ended.status).toBe(200);
      await page.locator('[data-testid="talk-button"][data-state="idle"]').waitFor({ timeout: 5000 });
      expect(await page.getByTestId('talk-status').textContent()).toBe('The server ended this session; the recording is below.');
      await page.locator(`[data-testid="recording-row"][data-name*="${second.peer}"][data-live="false"]`).waitFor({ timeout: 10_000 });

      expect(problems).toEqual([]);
      const { peers } = await get<{ peers: ClusterPeer[] }>(a, '/cluster/stats');
      expect(peers.filter((p) => p.state !== 'ended').map((p) => p.peer)).toEqual(['bot']);
    } finally {
      stopBot.abort();
      await bot.catch(() => undefined);
    }
  });
});
