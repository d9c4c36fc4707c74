/**
 * Asserting that a live 1 kHz peer can be heard from a given address the two
 * ways a listener can: a WHEP player (Opus, decoded) and `GET /peers/:peer/audio`
 * (48 kHz s16 over a WebSocket). Used where the request takes a hop (the
 * `--processes` front, another cluster node) before it reaches the peer.
 */
import { expect } from 'vitest';
import { dominantFrequency } from './audio.js';
import { audioSocket, framesIn, s16Of } from './audio-socket.js';
import { decodeOpus, listen } from './listening.js';
import { until } from './until.js';

export async function expectToneHeardThrough(baseUrl: string, peer: string, headers: Record<string, string> = {}): Promise<void> {
  const player = await listen(`${baseUrl}/whep/${peer}`, { headers });
  expect(player.status).toBe(201);
  await player.connected();
  await until('the listener to hear 50 packets', () => (player.packets.length >= 50 ? true : undefined), 15_000);
  expect(Math.abs(dominantFrequency(decodeOpus(player.packets.slice(10)), 48000) - 1000)).toBeLessThanOrEqual(2);
  expect((await fetch(player.location!, { method: 'DELETE', headers })).status).toBe(200);
  expect((await fetch(player.location!, { method: 'DELETE', headers })).status).toBe(404);
  await player.close();

  const audio = audioSocket(`${baseUrl.replace(/^http/, 'ws')}/peers/${peer}/audio`, { headers });
  expect(await audio.outcome).toEqual({ open: true });
  await until('50 frames over the socket', () => (framesIn(audio.messages) >= 50 ? true : undefined), 15_000);
  expect(audio.messages[0]).toMatchObject({ type: 'start', peer, format: { sampleRate: 48000, sampleFormat: 's16' } });
  expect(Math.abs(dominantFrequency(s16Of(audio.messages), 48000) - 1000)).toBeLessThanOrEqual(2);
  audio.socket.close();
}
