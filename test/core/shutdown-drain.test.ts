/**
 * `server.close()` with live streams lets the application's chains of stage
 * operators drain, as the operators promise for completion (every frame
 * pushed comes out): each operator is a worker hop of its own, and a later
 * hop's worker stream closes only once the hop before it has drained, after
 * the sessions ended. Real server, real WebRTC publisher, real workers.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { gain, highpass, resample, type AudioFrame } from '../../src/index.js';
import { fixturePath } from '../helpers/fixtures.js';
import { startServer, type TestServer } from '../helpers/server.js';

let running: TestServer | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

describe('server.close() with live streams', () => {
  it('drains a chain of several operator hops on audio$: it completes, without an error, with every sample sent through', async () => {
    running = await startServer({ threads: 1, pipeline: 'handler' });
    const { server, url } = running;
    let received = 0;
    let out = 0;
    const outRates = new Set<number>();
    const ends: string[] = [];
    let closing: Promise<void> | undefined;
    const ended = new Promise<void>((resolve) => {
      server.streams$.subscribe((s) => {
        s.audio$.subscribe((f: AudioFrame) => {
          received += f.data.length;
          // Mid-send: the chain's hops all hold frames when the server closes.
          if (received >= 48000 && !closing) closing = server.close();
        });
        // Four hops: four worker streams, each closed by its operator once the one before has drained.
        s.audio$.pipe(gain({ db: -1 }), highpass({ frequency: 80 }), gain({ db: 1 }), resample({ sampleRate: 16000 })).subscribe({
          next: (f) => {
            out += f.data.length;
            outRates.add(f.sampleRate);
          },
          error: (e: unknown) => {
            ends.push(`error: ${String(e)}`);
            resolve();
          },
          complete: () => {
            ends.push('complete');
            resolve();
          },
        });
      });
    });
    // 4 s of audio sent 4× as fast: the server closes after about 1 s of it.
    const sent = sendAudio({ url: `${url}/whip/room/chain`, source: fixturePath('speech-48k.wav'), seconds: 4, speed: 4 }).catch(() => undefined);
    await ended;
    await closing;
    await sent;
    running = undefined;
    expect(ends).toEqual(['complete']);
    expect(outRates).toEqual(new Set([16000]));
    expect(received).toBeGreaterThanOrEqual(48000);
    // Every sample the stream delivered came out of the last hop, at a third of the rate.
    expect(out).toBe(received / 3);
  });
});
