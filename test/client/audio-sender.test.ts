/**
 * `sendAudio`'s options are checked before anything connects. (Sending itself,
 * in real time and faster, is exercised end to end by test/integration.)
 */
import { describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';

const source = { sampleRate: 48000 as const, channels: [new Float32Array(960)] };
// Nothing listens there: an option that passed the checks would fail to connect instead.
const url = 'http://127.0.0.1:9/whip/room/peer';

describe('sendAudio options', () => {
  it('takes a speed from 1 (real time) to 50 and refuses anything else up front', async () => {
    for (const speed of [0, 0.5, 51, Number.NaN, Infinity, -1]) {
      await expect(sendAudio({ url, source, speed })).rejects.toThrow(new RangeError(`speed must be 1–50, got ${speed}`));
    }
  });

  it('refuses a loss share outside 0–0.5 and nothing to send', async () => {
    await expect(sendAudio({ url, source, simulateLoss: 0.6 })).rejects.toThrow(RangeError);
    await expect(sendAudio({ url, source, seconds: 0 })).rejects.toThrow(/nothing to send/);
  });
});
