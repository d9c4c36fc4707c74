/**
 * The capacity bench's publishers: what they send (SOURCES) and where they
 * run. By default every publisher runs in the bench process, one event loop
 * for all K: when that loop stalls (a GC pause, a burst of DTLS handshakes,
 * the machine busy with the server on the same cores), every publisher's
 * held-back packets leave together and the receiver sees all K streams'
 * packets at once, which K independent clients never send. With `processes`
 * > 1 the publishers are shared out over that many child processes
 * (bench/publisher-child.ts), so a stall holds back only one process's share:
 * closer to clients on separate machines, and the same packets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { encodeSource, sendAudio, sendMany, type EncodedSource } from '../src/client/audio-sender.js';
import { readWavSource } from '../src/client/wav-stream.js';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..');

/**
 * What a target's publishers send (the `@<source>` suffix of its name):
 * - `speech`: noisy speech, every 20 ms packet sent (the default);
 * - `talk-dtx`: clean speech, then as long again of silence, sent with DTX as
 *   a browser does: a talker who speaks at most half the time. Each publisher
 *   starts at another point of the loop, so talkers do not all speak at once;
 * - `silence-dtx`: digital silence sent with DTX (a muted or silent talker).
 */
export const SOURCES = {
  speech: 'noisy speech, every packet sent',
  'talk-dtx': 'speech half the time or less, silence withheld by DTX (phases spread over the publishers)',
  'silence-dtx': 'digital silence sent with DTX',
} as const;
export type SourceName = keyof typeof SOURCES;

export async function encodedSources(needed: Set<SourceName>): Promise<Record<SourceName, EncodedSource | undefined>> {
  const fixture = (name: string) => readWavSource(join(ROOT, 'test', 'fixtures', name));
  const clean = needed.has('talk-dtx') ? (await fixture('speech-48k.wav')).channels[0] : undefined;
  const talk = clean ? new Float32Array(clean.length * 2) : undefined;
  talk?.set(clean!);
  return {
    speech: needed.has('speech') ? encodeSource(await fixture('speech-noisy-48k.wav')) : undefined,
    'talk-dtx': talk ? encodeSource({ sampleRate: 48000, channels: [talk] }, 1, undefined, true) : undefined,
    'silence-dtx': needed.has('silence-dtx') ? steadySilence(encodeSource({ sampleRate: 48000, channels: [new Float32Array(10 * 48000)] }, 1, undefined, true)) : undefined,
  };
}

/**
 * A silent DTX talker as it sends once its encoder has settled: an update every
 * ~400 ms with DTX frames between, the clip cut from its first update to just
 * before its last so that looping it repeats that pattern seamlessly. Looped
 * whole, the clip's first half-second (ten silence frames before DTX sets in,
 * which a talker sends once, when it starts) would recur every 10 s: ~1.1
 * frames a second per talker that no silent browser sends.
 */
function steadySilence(source: EncodedSource): EncodedSource {
  const updates = source.opus.flatMap((p, i) => (i > 0 && p.length > 2 && source.opus[i - 1].length <= 2 ? [i] : []));
  if (updates.length < 2) throw new Error('silence-dtx: the encoder made fewer than two DTX updates');
  return { ...source, opus: source.opus.slice(updates[0], updates[updates.length - 1]) };
}

/** Publisher `i` of `k` starts `i/k` of the way through the source (DTX sources only: a room of talkers is not in step). */
function startingAt(source: EncodedSource, i: number, k: number): EncodedSource {
  const at = Math.floor((source.opus.length * i) / k);
  return { ...source, opus: [...source.opus.slice(at), ...source.opus.slice(0, at)] };
}

/** How late a publishing process's event loop ran over a window, and its longest GC pause. */
export interface PublisherStalls {
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  gcMaxMs: number;
}

/** Watches this process over a window: its event loop's delay (libuv's timer, sampled every 10 ms) and its longest GC pause. */
export function publisherStalls(): { start(): void; stop(): PublisherStalls } {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  let gcMaxMs = 0;
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcMaxMs = Math.max(gcMaxMs, e.duration);
  });
  return {
    start() {
      delay.enable();
      gc.observe({ entryTypes: ['gc'] });
    },
    stop() {
      delay.disable();
      gc.disconnect();
      return { loopDelayP99Ms: delay.percentile(99) / 1e6, loopDelayMaxMs: delay.max / 1e6, gcMaxMs };
    },
  };
}

/** One step's publishing: `k` sessions to the WHIP URLs `whip(peer)`, for `seconds`, looping the source. */
export interface PublishJob {
  source: SourceName;
  seconds: number;
  /** The sessions' WHIP URLs, each with its number among the step's `k` (its phase in a DTX source). */
  peers: Array<{ url: string; index: number }>;
  k: number;
  /** Speech only: the WHIP URL sendMany numbers (-1 … -count) when the peers are `base-1` … `base-count`. */
  base?: string;
}

/** Sends one process's share of a step; resolves with how many sessions failed. */
export async function publish(job: PublishJob, source: EncodedSource): Promise<number> {
  // sendMany numbers its sessions only when there are several: one alone goes to its own URL.
  const sent = source.dtx || job.peers.length === 1
    ? await Promise.all(job.peers.map((p) => sendAudio({ url: p.url, source: source.dtx ? startingAt(source, p.index, job.k) : source, seconds: job.seconds, loop: true }).catch((error: Error) => ({ error }))))
    : await sendMany(job.peers.length, { url: job.base!, source, seconds: job.seconds, loop: true });
  return sent.filter((s) => 'error' in s).length;
}

/** Where a step's publishers run: this process, or child processes each sending a share. */
export interface Publishers {
  /** The peer ids of a step of `k` sessions named after `id`, in the order the step's statistics are read. */
  peers(id: string, k: number): string[];
  /** Publishes a step; resolves with how many sessions failed. */
  send(id: string, k: number, whip: (peer: string) => string, source: SourceName, seconds: number): Promise<number>;
  /** Starts watching the publishing processes' stalls. */
  watch(): void;
  /** Stops watching: the worst of the processes. */
  watched(): Promise<PublisherStalls>;
  close(): Promise<void>;
}

/** Every publisher in this process (`sources`: encoded here, once). */
export function localPublishers(sources: Record<SourceName, EncodedSource | undefined>): Publishers {
  let stalls = publisherStalls();
  return {
    peers: (id, k) => Array.from({ length: k }, (_, i) => `${id}-${i + 1}`),
    send: (id, k, whip, source, seconds) =>
      publish({ source, seconds, k, base: whip(id), peers: Array.from({ length: k }, (_, i) => ({ url: whip(`${id}-${i + 1}`), index: i })) }, sources[source]!),
    // A fresh watch each window: a delay histogram enabled again would count the time it was off.
    watch: () => {
      stalls = publisherStalls();
      stalls.start();
    },
    watched: async () => stalls.stop(),
    close: async () => undefined,
  };
}

/** A publisher child process and its answers, one request at a time. */
class PublisherChild {
  readonly #process: ChildProcess;
  readonly #waiting = new Map<string, (m: Record<string, unknown>) => void>();
  readonly ready: Promise<void>;
  constructor(sources: SourceName[]) {
    this.#process = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'publisher-child.ts'), sources.join(',')], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.#process.on('message', (m: Record<string, unknown>) => this.#waiting.get(m.type as string)?.(m));
    this.ready = this.#answer('ready', 120_000).then(() => undefined);
  }
  #answer(type: string, timeoutMs: number): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const exit = () => reject(new Error(`the publisher process exited before answering "${type}"`));
      const timer = setTimeout(() => reject(new Error(`the publisher process did not answer "${type}" in ${timeoutMs / 1000} s`)), timeoutMs);
      this.#process.once('exit', exit);
      this.#waiting.set(type, (m) => {
        clearTimeout(timer);
        this.#process.off('exit', exit);
        this.#waiting.delete(type);
        resolve(m);
      });
    });
  }
  request(message: Record<string, unknown>, answer: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const reply = this.#answer(answer, timeoutMs);
    this.#process.send(message);
    return reply;
  }
  async close(): Promise<void> {
    if (this.#process.exitCode !== null || this.#process.signalCode !== null) return;
    const exited = new Promise((r) => this.#process.once('exit', r));
    this.#process.kill('SIGTERM');
    await exited;
  }
}

/** The publishers shared out over `count` child processes, each encoding `sources` itself. */
export async function childPublishers(count: number, sources: SourceName[]): Promise<Publishers> {
  const children = Array.from({ length: count }, () => new PublisherChild(sources));
  await Promise.all(children.map((c) => c.ready));
  // Child j sends publishers j, j + count, …: each its share of the phases.
  const share = (k: number, j: number) => Array.from({ length: Math.ceil((k - j) / count) }, (_, n) => j + n * count);
  const base = (id: string, j: number) => `${id}p${j + 1}`;
  return {
    peers: (id, k) => children.flatMap((_, j) => share(k, j).map((_, n) => `${base(id, j)}-${n + 1}`)),
    async send(id, k, whip, source, seconds) {
      const failed = await Promise.all(
        children.map((c, j) => {
          const mine = share(k, j);
          if (mine.length === 0) return 0;
          const job: PublishJob = { source, seconds, k, base: whip(base(id, j)), peers: mine.map((index, n) => ({ url: whip(`${base(id, j)}-${n + 1}`), index })) };
          return c.request({ type: 'publish', job }, 'published', (seconds + 120) * 1000).then((m) => m.failed as number);
        }),
      );
      return failed.reduce((a, b) => a + b, 0);
    },
    watch() {
      // Not awaited (the window starts now); a child that does not answer shows in `watched`.
      for (const c of children) c.request({ type: 'watch' }, 'watching', 10_000).catch(() => undefined);
    },
    async watched() {
      const all = await Promise.all(children.map((c) => c.request({ type: 'watched' }, 'stalls', 10_000).then((m) => m.stalls as PublisherStalls)));
      return {
        loopDelayP99Ms: Math.max(...all.map((s) => s.loopDelayP99Ms)),
        loopDelayMaxMs: Math.max(...all.map((s) => s.loopDelayMaxMs)),
        gcMaxMs: Math.max(...all.map((s) => s.gcMaxMs)),
      };
    },
    close: async () => void (await Promise.all(children.map((c) => c.close()))),
  };
}
