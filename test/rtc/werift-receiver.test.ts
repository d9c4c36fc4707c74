/**
 * earshot's change to werift's RTP receiver (src/rtc/werift-receiver.ts): the
 * feedback getters give what werift's own give for every codec map a receiver
 * goes through, runRtcp still starts the receiver-report loop once and only
 * once, and a codec's name is what werift's getter gives.
 */
import fc from 'fast-check';
import { RTCRtpCodecParameters, RTCRtpReceiver } from 'werift';
import { describe, expect, it } from 'vitest';
import { cachesCodecName, patchesWeriftReceiver, weriftCodecName, weriftReceiver } from '../../src/rtc/werift-receiver.js';

type ReceiveParams = Parameters<RTCRtpReceiver['prepareReceive']>[0];
const FEEDBACK = ['twccEnabled', 'nackEnabled', 'pliEnabled'] as const;
const FEEDBACK_TYPES = ['transport-cc', 'nack', 'nack pli', 'goog-remb', 'ccm fir'];

function receiver(): RTCRtpReceiver {
  return new RTCRtpReceiver({} as ConstructorParameters<typeof RTCRtpReceiver>[0], 'audio', 1234);
}

/** A codec list: payload types and feedback chosen freely (the first by payload type is the one werift reads). */
const codecLists = fc.array(
  fc.record({
    payloadType: fc.integer({ min: 96, max: 127 }),
    mime: fc.constantFrom('audio/opus', 'audio/red', 'audio/PCMU', 'audio/rtx'),
    feedback: fc.subarray(FEEDBACK_TYPES),
  }),
  { maxLength: 5 },
);

function params(list: Array<{ payloadType: number; mime: string; feedback: string[] }>): ReceiveParams {
  const codecs = list.map(
    (c) =>
      new RTCRtpCodecParameters({
        mimeType: c.mime,
        clockRate: 48000,
        channels: 2,
        payloadType: c.payloadType,
        rtcpFeedback: c.feedback.map((f) => {
          const [type, parameter] = f.split(' ');
          return parameter ? { type, parameter } : { type };
        }),
      }),
  );
  return { codecs, encodings: [] } as unknown as ReceiveParams;
}

describe("werift's RTP receiver, as earshot runs it", () => {
  it('is the werift this change was written for (else it is left alone)', () => {
    expect(patchesWeriftReceiver).toBe(true);
  });

  it("the feedback getters equal werift's own through any sequence of codec changes", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom('prepare', 'resync'), codecLists), { minLength: 1, maxLength: 4 }), (steps) => {
        const r = receiver();
        for (const [how, list] of steps) {
          if (how === 'prepare') r.prepareReceive(params(list));
          else r.resyncCodecs(params(list));
          for (const name of FEEDBACK) {
            // Read twice: the second read comes from what the first kept.
            const werift = weriftReceiver.getters[name]!.call(r);
            expect(r[name]).toBe(werift);
            expect(r[name]).toBe(werift);
          }
        }
        r.stop();
      }),
      { numRuns: 300 },
    );
  });

  it('runRtcp starts the receiver-report loop once; later calls return at once, as werift does', async () => {
    const r = receiver() as RTCRtpReceiver & { rtcpRunning: boolean };
    expect(r.rtcpRunning).toBe(false);
    const loop = r.runRtcp();
    expect(r.rtcpRunning).toBe(true);
    const again = r.runRtcp();
    expect(again).not.toBe(loop);
    await expect(again).resolves.toBeUndefined();
    r.stop();
    // Stopped, the loop ends, and runRtcp does not start another.
    await loop;
    await expect(r.runRtcp()).resolves.toBeUndefined();
    expect(r.rtcpRunning).toBe(false);
  });

  it("a codec's name is werift's, for any MIME type, however often it is read or changed", () => {
    expect(cachesCodecName).toBe(true);
    const mimes = fc.oneof(fc.constantFrom('audio/opus', 'audio/OPUS', 'audio/red', 'video/rtx', 'opus', '', '/', 'a/b/c'), fc.string({ maxLength: 12 }));
    fc.assert(
      fc.property(fc.array(mimes, { minLength: 1, maxLength: 6 }), (list) => {
        const codec = new RTCRtpCodecParameters({ mimeType: list[0], clockRate: 48000 });
        for (const mime of list) {
          codec.mimeType = mime;
          expect(codec.name).toBe(weriftCodecName!.call(codec));
          expect(codec.name).toBe(mime.split('/')[1]);
        }
      }),
      { numRuns: 500 },
    );
    // What werift's getter does with a missing MIME type (throws), this one does too.
    const broken = new RTCRtpCodecParameters({ clockRate: 48000 } as ConstructorParameters<typeof RTCRtpCodecParameters>[0]);
    expect(() => broken.name).toThrow(TypeError);
  });
});
