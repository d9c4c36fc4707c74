/**
 * The front's handle on one engine slot: forks the engine process, waits for
 * it to listen, relays its messages, answers calls, and notices when it exits.
 * The restart policy lives with the caller (cluster-server.ts); a slot keeps
 * its number across restarts, so labels (`engine="1"`) stay stable.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { EarshotError, errors } from '../errors.js';
import type { EngineMessage, EngineReport, EngineServerOptions, EngineStats, FrontMessage, RoomsResult } from './engine-protocol.js';

export type EngineState = 'starting' | 'up' | 'stopping' | 'exited';

export interface EngineExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** `Date.now()`. */
  at: number;
  /** Whether it had been up (listening) before it exited. */
  wasUp: boolean;
}

export interface EngineEvents {
  /** Any message after `ready` (reports, session and processor events). */
  onMessage(engine: EngineProcess, message: EngineMessage): void;
  onExit(engine: EngineProcess, exit: EngineExit): void;
}

/** How long a statistics call may take before it counts as failed, ms. */
const CALL_TIMEOUT_MS = 5000;
/** How long an engine may take to take the room bindings, ms: as long as a change over HTTP may (cluster/forward.ts). */
const ROOMS_TIMEOUT_MS = 30_000;

/** The engine's entry module: the compiled one, or the TypeScript source (with tsx) when running from src/. */
function engineEntry(): { path: string; execArgv: string[] } {
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith('.ts')) {
    // From the sources (tests, `node --import tsx`): the child needs the same loader.
    const execArgv = process.execArgv.some((a) => a.includes('tsx')) ? process.execArgv : [...process.execArgv, '--import', 'tsx'];
    return { path: fileURLToPath(new URL('./engine-main.ts', import.meta.url)), execArgv };
  }
  return { path: fileURLToPath(new URL('./engine-main.js', import.meta.url)), execArgv: process.execArgv };
}

export class EngineProcess {
  /** The slot, `0 … processes-1`. */
  readonly slot: number;
  /** The placement id of this slot. */
  readonly id: string;
  state: EngineState = 'starting';
  /** Loopback HTTP port of the current process (0 until it is up). */
  port = 0;
  pid: number | undefined;
  threads = 0;
  /** Times this slot's process was replaced. */
  restarts = 0;
  startedAt = 0;
  report: EngineReport | undefined;
  /** When its last load report came (performance.now()), or when it came up: a hung engine's stops. */
  reportedAt = 0;
  lastExit: EngineExit | undefined;
  readonly #events: EngineEvents;
  #child: ChildProcess | undefined;
  readonly #calls = new Map<number, { resolve(v: EngineStats | RoomsResult): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  #nextCall = 1;
  #exited: Promise<void> = Promise.resolve();

  constructor(slot: number, events: EngineEvents) {
    this.slot = slot;
    this.id = String(slot);
    this.#events = events;
  }

  /**
   * Forks the process and resolves once it listens; rejects with its start-up
   * error (the same `EARSHOT_…` a single process would throw) if it fails.
   */
  start(options: EngineServerOptions, rooms: Record<string, string>, previousPipelines?: Record<string, unknown>): Promise<void> {
    const { path, execArgv } = engineEntry();
    this.state = 'starting';
    this.port = 0;
    this.report = undefined;
    this.startedAt = Date.now();
    // Its own process group: a terminal's Ctrl-C reaches the front alone, which then drains the engines in order.
    const child = fork(path, [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], detached: true });
    this.#child = child;
    this.pid = child.pid;
    let settle: { resolve(): void; reject(e: Error): void } | undefined;
    const ready = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    let exitFailure: EarshotError | undefined;
    child.on('message', (message: EngineMessage) => {
      if (message.t === 'ready') {
        this.port = message.port;
        this.threads = message.threads;
        this.state = 'up';
        this.reportedAt = performance.now();
        settle?.resolve();
        settle = undefined;
        return;
      }
      if (message.t === 'failed') {
        const e = message.error;
        exitFailure = e.code ? new EarshotError(e.code, e.statusCode ?? 500, e.title ?? 'Engine failed', e.message) : errors.INTERNAL(`engine ${this.slot} failed to start: ${e.message}`);
        return;
      }
      if (message.t === 'result') {
        const call = this.#calls.get(message.id);
        if (!call) return;
        this.#calls.delete(message.id);
        clearTimeout(call.timer);
        if (message.value) call.resolve(message.value);
        else call.reject(new Error(message.error ?? 'no result'));
        return;
      }
      if (message.t === 'report') this.report = message.report;
      this.#events.onMessage(this, message);
    });
    this.#exited = new Promise((resolve) => {
      child.once('exit', async (code, signal) => {
        // Messages still in the channel (a start-up failure's reason) are read before it disconnects.
        if (child.connected) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, 1000);
            child.once('disconnect', () => {
              clearTimeout(timer);
              resolve();
            });
          });
        }
        const wasUp = this.state === 'up' || this.state === 'stopping';
        this.state = 'exited';
        this.port = 0;
        this.lastExit = { code, signal, at: Date.now(), wasUp };
        for (const [id, call] of this.#calls) {
          clearTimeout(call.timer);
          call.reject(new Error(`engine ${this.slot} exited`));
          this.#calls.delete(id);
        }
        if (settle) {
          settle.reject(exitFailure ?? errors.INTERNAL(`engine ${this.slot} exited while starting (${signal ?? `code ${code}`})`));
          settle = undefined;
        }
        resolve();
        this.#events.onExit(this, this.lastExit);
      });
    });
    // 'error' (fork failed, or a send to a dead channel): the exit handler does the bookkeeping.
    child.on('error', () => undefined);
    child.send({ t: 'start', engine: this.slot, options, rooms, ...(previousPipelines ? { previousPipelines } : {}) } satisfies FrontMessage);
    return ready;
  }

  /** `{ server, peers }` from the engine, as its own `GET /stats` would answer. */
  stats(): Promise<EngineStats> {
    return this.#call({ method: 'stats' }) as Promise<EngineStats>;
  }

  /**
   * Makes the engine's room bindings exactly `rooms` (see the `rooms` call in
   * engine-protocol.ts); resolves to those whose pipeline it has not loaded.
   */
  async setRooms(rooms: Record<string, string>): Promise<Record<string, string>> {
    return ((await this.#call({ method: 'rooms', rooms }, ROOMS_TIMEOUT_MS)) as RoomsResult).missing;
  }

  /** Sends a call and resolves with the engine's answer; rejects if it is not up, exits, or does not answer in time. */
  #call(call: { method: 'stats' } | { method: 'rooms'; rooms: Record<string, string> }, timeoutMs = CALL_TIMEOUT_MS): Promise<EngineStats | RoomsResult> {
    const child = this.#child;
    if (this.state !== 'up' || !child?.connected) return Promise.reject(new Error(`engine ${this.slot} is not up`));
    const id = this.#nextCall++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#calls.delete(id);
        reject(new Error(`engine ${this.slot} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#calls.set(id, { resolve, reject, timer });
      child.send({ t: 'call', id, ...call } satisfies FrontMessage, (err) => {
        if (!err) return;
        clearTimeout(timer);
        this.#calls.delete(id);
        reject(err);
      });
    });
  }

  /** Ends one of the engine's sessions (no answer: its end is reported like any other). */
  end(session: string, reason: 'replaced'): void {
    const child = this.#child;
    if (this.state === 'up' && child?.connected) child.send({ t: 'end', session, reason } satisfies FrontMessage, () => undefined);
  }

  /**
   * Drains the engine (its sessions end, recordings are finalized) and waits
   * for it to exit; after `timeoutMs` it is killed.
   */
  async shutdown(timeoutMs: number): Promise<void> {
    const child = this.#child;
    if (!child || this.state === 'exited') return;
    this.state = 'stopping';
    if (child.connected) child.send({ t: 'shutdown' } satisfies FrontMessage, () => undefined);
    else child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    try {
      await this.#exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves when the current process has exited. */
  exited(): Promise<void> {
    return this.#exited;
  }
}
