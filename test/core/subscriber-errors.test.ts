/**
 * A subscriber of the library API (`streams$`, a stream's `audio$`, `events$`)
 * that throws is reported — logged once and published as a `subscriber-error`
 * event — instead of becoming an uncaughtException; the stream goes on.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { mergeMap, tap } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { gain, speechSegments, type ProcessorEvent } from '../../src/index.js';
import { fixturePath } from '../helpers/fixtures.js';
import { startServer, type TestServer } from '../helpers/server.js';

let t: TestServer | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

/** Runs `body` collecting uncaught exceptions (where RxJS rethrows what an unguarded subscriber threw), then stops collecting. */
async function withUncaught(body: (uncaught: unknown[]) => Promise<void>): Promise<void> {
  const uncaught: unknown[] = [];
  const onUncaught = (e: unknown) => uncaught.push(e);
  process.on('uncaughtException', onUncaught);
  try {
    await body(uncaught);
  } finally {
    process.off('uncaughtException', onUncaught);
  }
}

describe('subscribers that throw', () => {
  it('are reported once each, and neither the process nor the stream fails', async () => {
    const lines: Array<{ msg: string; observable?: string; peer?: string; err?: { message: string } }> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    });
    await withUncaught(async (uncaught) => {
      t = await startServer({ logger: pino({ level: 'error' }, sink) });
      const events: ProcessorEvent[] = [];
      t.server.events$.subscribe((e) => events.push(e));
      let framesSeen = 0;
      t.server.streams$.subscribe((s) => {
        s.audio$.subscribe(() => {
          framesSeen++;
          throw new Error('audio$ subscriber bug');
        });
        throw new Error('streams$ subscriber bug');
      });
      let eventsThrown = 0;
      t.server.events$.subscribe(() => {
        eventsThrown++;
        throw new Error('events$ subscriber bug');
      });

      const result = await sendAudio({ url: `${t.url}/whip/room/ann`, source: fixturePath('speech-48k.wav'), seconds: 1 });
      await new Promise((r) => setTimeout(r, 200)); // an uncaught rethrow would come on a timer
      expect(uncaught).toEqual([]);

      const reported = events.filter((e) => e.processor === 'earshot' && e.event === 'subscriber-error');
      expect(reported.map((e) => (e.data as { observable: string }).observable).sort()).toEqual(['audio$', 'events$', 'streams$']);
      expect(reported.every((e) => e.peerId === 'ann' && e.roomId === 'room')).toBe(true);
      const logged = lines.filter((l) => l.msg.startsWith('a subscriber of '));
      expect(logged.map((l) => l.observable).sort()).toEqual(['audio$', 'events$', 'streams$']);
      expect(logged.find((l) => l.observable === 'audio$')?.err?.message).toBe('audio$ subscriber bug');

      // The throwing subscribers stayed subscribed, and the stream was processed in full.
      expect(framesSeen).toBeGreaterThan(40);
      expect(eventsThrown).toBeGreaterThanOrEqual(3);
      const stats = (await (await fetch(`${t.url}/stats/ann`)).json()) as { processing: { framesProcessed: number }; endReason: string };
      expect(stats.processing.framesProcessed).toBeGreaterThanOrEqual(result.packetsSent - 5);
    });
  });

  it('stay reported past earshot\'s own operators: a stage operator and speechSegments keep the guard', async () => {
    await withUncaught(async (uncaught) => {
      t = await startServer({ logLevel: 'silent' });
      const events: ProcessorEvent[] = [];
      t.server.events$.subscribe((e) => events.push(e));
      let gained = 0;
      let segments = 0;
      t.server.streams$.subscribe((s) => {
        // library.md's pattern: a worker stage on a stream's audio, then the application's callback.
        s.audio$.pipe(gain({ db: -6 })).subscribe(() => {
          if (++gained === 5) throw new Error('bug after a stage');
        });
        s.audio$.pipe(speechSegments({ by: 'energy', thresholdDb: -60 })).subscribe(() => {
          segments++;
          throw new Error('bug after speechSegments');
        });
      });
      await sendAudio({ url: `${t.url}/whip/room/cy`, source: fixturePath('speech-48k.wav'), seconds: 1 });
      await new Promise((r) => setTimeout(r, 300)); // an uncaught rethrow would come on a timer
      expect(uncaught).toEqual([]);
      const reported = events.filter((e) => e.processor === 'earshot' && e.event === 'subscriber-error');
      expect(reported.map((e) => (e.data as { message: string }).message).sort()).toEqual(['bug after a stage', 'bug after speechSegments']);
      // Still subscribed: the frames after the throw came too.
      expect(gained).toBeGreaterThan(40);
      expect(segments).toBeGreaterThanOrEqual(1);
    });
  });

  it('report an operator that throws in a chain on streams$ (the chain ends, as in RxJS), and neither the process nor the stream fails', async () => {
    await withUncaught(async (uncaught) => {
      t = await startServer({ logLevel: 'silent' });
      const events: ProcessorEvent[] = [];
      t.server.events$.subscribe((e) => events.push(e));
      let frames = 0;
      // library.md's first pattern, with a bug in the user's operator: the chain has no error callback.
      t.server.streams$
        .pipe(
          mergeMap((s) =>
            s.audio$.pipe(
              tap(() => {
                if (++frames === 10) throw new Error('operator bug');
              }),
            ),
          ),
        )
        .subscribe();
      const result = await sendAudio({ url: `${t.url}/whip/room/bob`, source: fixturePath('speech-48k.wav'), seconds: 1 });
      await new Promise((r) => setTimeout(r, 200)); // an uncaught rethrow would come on a timer
      expect(uncaught).toEqual([]);
      const reported = events.filter((e) => e.processor === 'earshot' && e.event === 'subscriber-error');
      expect(reported.map((e) => e.data)).toEqual([{ observable: 'streams$', message: 'operator bug', ended: true }]);
      // The chain ended at the error; the stream was processed in full.
      expect(frames).toBe(10);
      const stats = (await (await fetch(`${t.url}/stats/bob`)).json()) as { processing: { framesProcessed: number } };
      expect(stats.processing.framesProcessed).toBeGreaterThanOrEqual(result.packetsSent - 5);
    });
  });
});
