/**
 * The `WebRTCHandler` API with the caller's own signaling: a werift
 * client offers, the handler's peer connection answers, audio flows over
 * loopback and is processed, recorded to a chosen path and measured.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Observable } from 'rxjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { AudioFilter, AudioTranscoder, DefaultAudioProcessor, defaultProcessors, registerProcessor, WebRTCHandler, type AudioFrame, type PeerStatsSnapshot, type ProcessedAudio, type ProcessorEvent, type StreamHandle } from '../../src/index.js';
import { iceGatheringComplete } from '../../src/rtc/ice-config.js';
import { dominantFrequency, readWav } from '../helpers/audio.js';
import { fixturePath } from '../helpers/fixtures.js';
import { FAST } from '../helpers/sending.js';

let dir: string;
let handler: WebRTCHandler | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'earshot-handler-'));
});
afterEach(async () => {
  await handler?.close();
  handler = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** Signaling done by the application: hand the offer to the handler's peer connection, return its answer. */
function signalingFor(h: WebRTCHandler, room: string, peer: string) {
  return async (offer: string) => {
    const pc = h.createPeerConnection(room, peer);
    await pc.setRemoteDescription({ type: 'offer', sdp: offer });
    await pc.setLocalDescription(await pc.createAnswer());
    await iceGatheringComplete(pc);
    return pc.localDescription!.sdp;
  };
}

describe('WebRTCHandler', () => {
  it('processes a peer connection made for custom signaling: recording to a chosen path, statistics, custom processors', async () => {
    handler = new WebRTCHandler({ recordingsDir: join(dir, 'rec'), iceHostAddresses: ['127.0.0.1'], mediaTimeoutMs: 1000 });
    await handler.ready();
    const processed: ProcessedAudio[] = [];
    handler.processedAudio$.subscribe((p) => processed.push(p));
    // A subscriber that throws is reported with the stream's ids (a processedAudio$ value names only its peer).
    const reported: ProcessorEvent[] = [];
    handler.events$.subscribe((e) => void (e.event === 'subscriber-error' && reported.push(e)));
    let thrown = false;
    handler.processedAudio$.subscribe(() => {
      if (thrown) return;
      thrown = true;
      throw new Error('a subscriber bug');
    });
    handler.registerCustomAudioProcessor('to16k', new AudioTranscoder({ sampleRate: 16000 }));
    handler.registerCustomAudioProcessor('same', new DefaultAudioProcessor());

    const target = join(dir, 'alice-take1.wav');
    const sending = sendAudio({ signaling: signalingFor(handler, 'lobby', 'alice'), hostAddresses: ['127.0.0.1'], source: fixturePath('tone-1k-48k.wav'), seconds: 2 });
    // Start recording once half a second of the stream has arrived (ICE and DTLS take their time).
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const live = handler.getAllAudioStatistics().alice;
      if (live && live.rtp.packetsReceived >= 25) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    // A path whose directory does not exist: the error names that directory, not the recordings directory.
    const missing = join(dir, 'no-such-dir');
    await expect(handler.startAudioRecording('alice', join(missing, 'x.wav'))).rejects.toMatchObject({
      code: 'EARSHOT_RECORDINGS_DIR_UNWRITABLE',
      message: expect.stringContaining(`Cannot write recordings to "${missing}": ENOENT`),
    });
    // The advice fits code that gave the path, not only the CLI (it said "pass --recordings DIR").
    await expect(handler.startAudioRecording('alice', join(missing, 'x.wav'))).rejects.toMatchObject({
      message: expect.stringMatching(/the directory does not exist\. Create it, or record elsewhere \(.*the path a recording is started with\)\.$/),
    });
    const started = await handler.startAudioRecording('alice', target);
    expect(started).toMatchObject({ name: 'alice-take1.wav', state: 'recording' });
    expect(Object.keys(handler.getAllAudioStatistics())).toEqual(['alice']);
    // Stopped while the stream runs (at 1.5 s of the 2 s): the sender's close ends the stream at once.
    while (Date.now() < deadline && handler.getAudioStatistics('alice').rtp.packetsReceived < 75) await new Promise((r) => setTimeout(r, 20));
    const stopped = await handler.stopAudioRecording('alice');
    expect(stopped.state).toBe('stopped');
    const sent = await sending;
    // The sender closed its connection with a close_notify (no DELETE with custom signaling): the stream
    // ends at once for that reason, not at the media timeout.
    let ended: PeerStatsSnapshot | undefined;
    for (const until = Date.now() + 5000; Date.now() < until && !ended; await new Promise((r) => setTimeout(r, 20))) {
      const s = handler.getAudioStatistics('alice');
      if (s.state === 'ended') ended = s;
    }
    expect(ended?.endReason).toBe('closed-by-peer');

    const wav = await readWav(target);
    // Started half a second in: the rest of the 2 s, not all of it.
    expect(wav.durationSec).toBeGreaterThan(0.5);
    expect(wav.durationSec).toBeLessThan(1.6);
    expect(Math.abs(dominantFrequency(wav.channels[0], 48000) - 1000)).toBeLessThan(10);

    const stats = handler.getAudioStatistics('alice');
    expect(stats).toMatchObject({ peer: 'alice', room: 'lobby', pipeline: 'handler' });
    expect(reported).toEqual([expect.objectContaining({ peerId: 'alice', roomId: 'lobby', sessionId: stats.session, data: expect.objectContaining({ observable: 'processedAudio$' }) })]);
    expect(stats.rtp.packetsReceived).toBe(sent.packetsSent);

    const by = (name: string) => processed.filter((p) => p.processor === name && p.peerId === 'alice');
    const samples16 = by('to16k').reduce((n, p) => n + p.frame.data.length, 0);
    expect(by('to16k').every((p) => p.frame.sampleRate === 16000)).toBe(true);
    // The stream ended: the resampler's last samples (its filter's delay) came out too, 2 s at 16 kHz.
    expect(Math.abs(samples16 - 32000)).toBeLessThanOrEqual(32);
    expect(by('same').length).toBe(100);
  });

  it('is usable at once: a peer connection made right after construction is processed, with no frame lost to the warm-up', async () => {
    handler = new WebRTCHandler({ recordingsDir: join(dir, 'rec'), iceHostAddresses: ['127.0.0.1'], mediaTimeoutMs: 1000 });
    const ready = handler.ready();
    // Everything below happens before the workers are warm, as the WebRTCHandler documentation reads.
    const streams: StreamHandle[] = [];
    handler.streams$.subscribe((s) => streams.push(s));
    const processed: ProcessedAudio[] = [];
    handler.processedAudio$.subscribe((p) => processed.push(p));
    handler.registerCustomAudioProcessor('same', new DefaultAudioProcessor());
    // The name again: it replaces the processor, each frame still processed once (it ran twice).
    handler.registerCustomAudioProcessor('same', new DefaultAudioProcessor());
    const pc = handler.createPeerConnection('lobby', 'bob');
    expect(streams.map((s) => s.peerId)).toEqual(['bob']);
    let samples = 0;
    const ended = new Promise<void>((resolve) => streams[0].audio$.subscribe({ next: (f) => void (samples += f.data.length), complete: resolve }));

    const sent = await sendAudio({
      url: 'custom:',
      hostAddresses: ['127.0.0.1'],
      source: fixturePath('tone-1k-48k.wav'),
      seconds: 1.5,
      // Faster than real time: more of the stream arrives while the workers are still warming up.
      speed: FAST,
      signaling: async (offer) => {
        await pc.setRemoteDescription({ type: 'offer', sdp: offer });
        await pc.setLocalDescription(await pc.createAnswer());
        await iceGatheringComplete(pc);
        return pc.localDescription!.sdp;
      },
    });
    await ready;
    await ended; // the media timeout ends the stream once the sender stops
    expect(sent.packetsSent).toBe(75);
    expect(handler.getAudioStatistics('bob').rtp.packetsReceived).toBe(sent.packetsSent);
    expect(samples).toBe(1.5 * 48000);
    const same = processed.filter((p) => p.peerId === 'bob' && p.processor === 'same');
    expect(same).toHaveLength(75);
    expect(new Set(same.map((p) => p.frame.position)).size).toBe(75);
  });

  it('runs processors registered process-wide (registerProcessor), as a server does: the bundled voice-agent pipeline works', async () => {
    let heard = 0;
    registerProcessor('asr', () => ({ next: () => void heard++ }));
    try {
      handler = new WebRTCHandler({ pipeline: 'voice-agent', recordingsDir: join(dir, 'rec'), iceHostAddresses: ['127.0.0.1'], mediaTimeoutMs: 1000 });
      const sent = await sendAudio({ signaling: signalingFor(handler, 'lobby', 'vic'), hostAddresses: ['127.0.0.1'], source: fixturePath('speech-48k.wav'), seconds: 1 });
      for (const until = Date.now() + 5000; Date.now() < until && handler.getAudioStatistics('vic').state !== 'ended'; ) await new Promise((r) => setTimeout(r, 20));
      expect(sent.packetsSent).toBe(50);
      expect(heard).toBeGreaterThanOrEqual(45);
    } finally {
      // Process-wide: the files after this one share the process.
      defaultProcessors.unregister('asr');
    }
  });

  it('refuses at registration anything that is not an AudioProcessor', async () => {
    handler = new WebRTCHandler({ recordingsDir: join(dir, 'rec'), iceHostAddresses: ['127.0.0.1'] });
    const bare = (_peerId: string, frames$: Observable<AudioFrame>) => frames$;
    for (const bad of [bare, null, undefined, 'gain', {}, { name: 'x', process: 'nope' }]) {
      expect(() => handler!.registerCustomAudioProcessor('bad', bad as never)).toThrow(
        expect.objectContaining({
          code: 'EARSHOT_PROCESSOR_INVALID',
          message: expect.stringMatching(/^Processor "bad" cannot be registered: expected an AudioProcessor instance \(an object with a process\(peerId, frames\$\) method/),
        }),
      );
    }
    expect(() => handler!.registerCustomAudioProcessor('bad', bare as never)).toThrow(/got a function: wrap it in a subclass of AudioProcessor/);
    // An object of the same shape is an AudioProcessor as far as the WebRTCHandler API goes.
    const detach = handler.registerCustomAudioProcessor('duck', { name: 'duck', process: (_peerId, frames$) => frames$ });
    expect(typeof detach).toBe('function');
    await handler.ready();
  });

  it('names unknown peers', async () => {
    handler = new WebRTCHandler({ recordingsDir: join(dir, 'rec'), iceHostAddresses: ['127.0.0.1'] });
    // Pointing to what lists peers here, not to an HTTP route a handler does not have.
    expect(() => handler!.getAudioStatistics('ghost')).toThrow(
      expect.objectContaining({ code: 'EARSHOT_PEER_NOT_FOUND', message: 'No peer "ghost", live or recently ended. getAllAudioStatistics() lists the live peers.' }),
    );
    await expect(handler.startAudioRecording('ghost', 'x.wav')).rejects.toMatchObject({
      code: 'EARSHOT_PEER_NOT_FOUND',
      message: 'No live peer "ghost": it has ended or never connected. getAllAudioStatistics() lists the live peers.',
    });
    await expect(handler.stopAudioRecording('ghost')).rejects.toMatchObject({ code: 'EARSHOT_PEER_NOT_FOUND', message: expect.stringMatching(/getAllAudioStatistics\(\) lists/) });
  });

  it('throws at once for a pipeline it cannot read, and reports a recordings directory it cannot create from ready() and every call after', async () => {
    expect(() => new WebRTCHandler({ pipeline: join(dir, 'missing.json') })).toThrow(expect.objectContaining({ code: 'EARSHOT_PIPELINE_FILE_UNREADABLE' }));

    await writeFile(join(dir, 'a-file'), '');
    handler = new WebRTCHandler({ recordingsDir: join(dir, 'a-file', 'rec'), iceHostAddresses: ['127.0.0.1'] });
    const pc = handler.createPeerConnection('lobby', 'carol'); // before the failure is known
    await expect(handler.ready()).rejects.toMatchObject({ code: 'EARSHOT_RECORDINGS_DIR_UNWRITABLE' });
    expect(() => handler!.createPeerConnection('lobby', 'dave')).toThrow(expect.objectContaining({ code: 'EARSHOT_RECORDINGS_DIR_UNWRITABLE' }));
    await handler.close(); // resolves: the stream made before the failure is ended
    expect(pc.connectionState).toBe('closed');
  });

  it('builds AudioTranscoder and AudioFilter from the worker stages', () => {
    expect(new AudioTranscoder({ sampleRate: 16000, channels: 1, frameDurationMs: 10, sampleFormat: 's16' }).stages.map((s) => s.type)).toEqual([
      'downmix',
      'resample',
      'reframe',
      'format',
    ]);
    const filter = new AudioFilter({ denoise: true, highpass: 80, notch: { frequency: 50, q: 10 }, gainDb: 3, limiter: true });
    expect(filter.stages).toEqual([
      { type: 'denoise' },
      { type: 'highpass', frequency: 80 },
      { type: 'notch', frequency: 50, q: 10 },
      { type: 'gain', db: 3 },
      { type: 'limiter' },
    ]);
    expect(() => new AudioTranscoder({ channels: 3 as 1 })).toThrow(expect.objectContaining({ code: 'EARSHOT_OPTION_INVALID', message: 'options.channels must be 1 or 2, got 3' }));
    expect(() => new AudioFilter({ highpass: -5 })).toThrow(/highpass\(\): frequency/);
    expect(() => new AudioTranscoder({ sampleRate: 4000 })).toThrow(/resample\(\): sampleRate/);
  });
});
