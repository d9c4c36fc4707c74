/**
 * Two servers in one process share nothing: each has its own processor
 * registry (over the process-wide one) and its own worker pool, which the
 * stage operators on its streams use (also when subscribed after an `await`);
 * closing one leaves the other working.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { defaultProcessors, gain, highpass, registerProcessor, type AudioFrame } from '../../src/index.js';
import { hasDefaultPool } from '../../src/pool/default-pool.js';
import { fixturePath } from '../helpers/fixtures.js';
import { startServer, type TestServer } from '../helpers/server.js';

const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  defaultProcessors.unregister('everywhere');
});

describe('two servers in one process', () => {
  it('have their own processor registries over the process-wide one', async () => {
    const [a, b] = await Promise.all([startServer({ threads: 1 }), startServer({ threads: 1 })]);
    servers.push(a, b);
    a.server.registerProcessor('only-a', () => ({ next() {} }));
    expect(a.server.core.processors.has('only-a')).toBe(true);
    expect(b.server.core.processors.has('only-a')).toBe(false);
    expect(() => b.server.attachProcessor('only-a')).toThrow(expect.objectContaining({ code: 'EARSHOT_PROCESSOR_NOT_FOUND' }));
    // The process-wide registry reaches both.
    registerProcessor('everywhere', () => ({ next() {} }));
    // Whatever else the process registered (test files share a process) shows on both as well.
    const everywhere = defaultProcessors.names();
    expect(everywhere).toContain('everywhere');
    expect(everywhere).not.toContain('only-a');
    expect(a.server.core.processors.names()).toEqual([...everywhere, 'only-a'].sort());
    expect(b.server.core.processors.names()).toEqual(everywhere);
    b.server.attachProcessor('everywhere')();
    // A scope that is not a ProcessorScope is refused: a misspelt key or a bare string would attach to every stream.
    for (const [scope, option] of [[{ rooom: 'support' }, 'scope.rooom'], ['support', 'scope'], [{ room: 5 }, 'scope.room'], [{ peer: '' }, 'scope.peer'], [{ options: 'x' }, 'scope.options']] as const) {
      expect(() => b.server.attachProcessor('everywhere', scope as never), JSON.stringify(scope)).toThrow(expect.objectContaining({ code: 'EARSHOT_OPTION_INVALID', extensions: { option } }));
    }
    b.server.attachProcessor('everywhere', { room: 'support', branch: 'main', options: { k: 1 } })();
  });

  it('run stage operators on their own streams on their own pool, and closing one does not stop the other', async () => {
    // A starts first: were there one process-wide default pool, A's would be it.
    const a = await startServer({ threads: 1 });
    servers.push(a);
    const b = await startServer({ threads: 1 });
    servers.push(b);
    expect(a.server.core.pool).not.toBe(b.server.core.pool);
    const frames: AudioFrame[] = [];
    let poolStreamsOfA = -1;
    let poolStreamsOfB = -1;
    const done = new Promise<void>((resolve, reject) => {
      b.server.streams$.subscribe((s) => {
        s.audio$.pipe(gain({ db: -6 })).subscribe({
          next: (f) => {
            frames.push(f);
            if (frames.length === 10) {
              poolStreamsOfA = a.server.core.pool.stats().streams;
              poolStreamsOfB = b.server.core.pool.stats().streams;
              // Server A goes away while B's operator runs.
              void a.close().then(() => servers.splice(servers.indexOf(a), 1));
            }
          },
          error: reject,
          complete: resolve,
        });
      });
    });
    const sent = await sendAudio({ url: `${b.url}/whip/room/bea`, source: fixturePath('speech-48k.wav'), seconds: 2 });
    await done;
    // B's pool ran the stream's pipeline and the operator; A's ran nothing.
    expect(poolStreamsOfB).toBe(2);
    expect(poolStreamsOfA).toBe(0);
    // Every frame came through the operator, also those after A closed.
    expect(frames.length).toBeGreaterThanOrEqual(sent.packetsSent - 5);
  });

  it('run an operator subscribed after an await in a streams$ subscriber on their own pool, and the operators after it too', async () => {
    const a = await startServer({ threads: 1 });
    servers.push(a);
    const b = await startServer({ threads: 1 });
    servers.push(b);
    const frames: AudioFrame[] = [];
    let poolStreamsOfA = -1;
    let poolStreamsOfB = -1;
    const done = new Promise<void>((resolve, reject) => {
      b.server.streams$.subscribe(async (s) => {
        await sleep(10); // out of the server's synchronous call: no pool in scope when the operators subscribe
        s.audio$.pipe(gain({ db: -6 }), highpass({ frequency: 80 })).subscribe({
          next: (f) => {
            frames.push(f);
            if (frames.length === 10) {
              poolStreamsOfA = a.server.core.pool.stats().streams;
              poolStreamsOfB = b.server.core.pool.stats().streams;
            }
          },
          error: reject,
          complete: resolve,
        });
      });
    });
    await sendAudio({ url: `${b.url}/whip/room/bea`, source: fixturePath('speech-48k.wav'), seconds: 1 });
    await done;
    expect(frames.length).toBeGreaterThanOrEqual(10);
    // The stream's pipeline and both operators on B's pool; nothing on A's, and no process-wide pool made.
    expect(poolStreamsOfB).toBe(3);
    expect(poolStreamsOfA).toBe(0);
    expect(hasDefaultPool()).toBe(false);
  });
});
