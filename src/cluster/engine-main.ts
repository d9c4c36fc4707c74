/**
 * An engine process: one `createServer` (werift main thread + DSP pool) on a
 * loopback port, started and driven by the front over the fork IPC channel
 * (src/cluster/engine-protocol.ts). Not a command of its own: the front forks
 * it with `child_process.fork` and sends `start` first.
 *
 * It ends, draining its sessions and finalizing their recordings, when the
 * front says `shutdown`, when the IPC channel closes (the front died: an
 * engine must not outlive it, holding UDP ports and files), or on
 * SIGTERM/SIGINT sent to it alone — the front then starts a fresh one.
 */
import { hostname } from 'node:os';
import pino from 'pino';
import { createEngineServer, type EarshotServer } from '../server/create-server.js';
import { applyInheritedParallelScavenge } from '../server/young-gc.js';
import { isClientMessage } from '../core/client-feed.js';
import { isEarshotError } from '../errors.js';
import type { EngineMessage, EngineReport, FrontMessage } from './engine-protocol.js';
import { PEERS_REPORT_INTERVAL_MS, POOL_COUNTERS, REPORT_INTERVAL_MS, type PoolCounters } from './engine-protocol.js';

/** Messages sent but not yet handed to the channel, past which processor events are dropped (counted). */
const MAX_UNSENT_MESSAGES = 1000;

if (!process.send) {
  process.stderr.write('earshot: engine-main is started by `earshot serve --processes N`, not directly\n');
  process.exit(2);
}

// The front's `--parallel-scavenge`, before this process makes any garbage of note.
applyInheritedParallelScavenge();

let unsent = 0;
let eventsDropped = 0;
function send(message: EngineMessage, droppable = false): void {
  if (!process.connected) return;
  if (droppable && unsent >= MAX_UNSENT_MESSAGES) {
    eventsDropped++;
    return;
  }
  unsent++;
  try {
    process.send!(message, undefined, {}, () => unsent--);
  } catch {
    // Data that does not serialize (a processor event holding a BigInt, a cycle): dropped, counted.
    unsent--;
    eventsDropped++;
  }
}

let server: EarshotServer | undefined;
let stopping: Promise<void> | undefined;

function stop(code: number): Promise<void> {
  stopping ??= (async () => {
    let exitCode = code;
    try {
      await server?.close();
    } catch (e) {
      // A drain that failed is not a clean stop: exit 1, so that the front repairs the recordings
      // this engine may have left unfinished and logs the exit as an error (0 means drained).
      exitCode = code || 1;
      server?.app.log.error({ err: (e as Error)?.message ?? String(e) }, 'engine: closing failed; exiting 1');
    } finally {
      await finalReport();
      process.exit(exitCode);
    }
  })();
  return stopping;
}

/**
 * The counts after the drain (its sessions ended as `shutdown`): the front
 * keeps an exited engine's last report in the machine's counters, and the
 * periodic one before the drain left those sessions started but never ended.
 * Read by the front before it handles the exit (it waits for the channel to
 * empty); at most a second, so that a front that is gone cannot hold the exit.
 */
async function finalReport(): Promise<void> {
  if (!server || !process.connected) return;
  let report: EngineReport;
  try {
    report = reportOf(server);
  } catch {
    return;
  }
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 1000);
    try {
      process.send!({ t: 'report', report } satisfies EngineMessage, undefined, {}, () => {
        clearTimeout(timer);
        resolve();
      });
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}

process.on('message', (message: FrontMessage) => {
  switch (message.t) {
    case 'start':
      void start(message);
      break;
    case 'call':
      if (!server) send({ t: 'result', id: message.id, error: 'engine not started' });
      else if (message.method === 'rooms') send({ t: 'result', id: message.id, value: { missing: server.core.restoreRoomBindings(message.rooms) } });
      else send({ t: 'result', id: message.id, value: { server: server.core.stats(), peers: server.core.peers.snapshots() } });
      break;
    case 'end':
      // Gone already (ended by itself meanwhile): nothing to do.
      void server?.core.endSession(message.session, message.reason).catch(() => undefined);
      break;
    case 'shutdown':
      void stop(0);
      break;
  }
});
// The front is gone: drain and go too.
process.on('disconnect', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
process.on('SIGINT', () => void stop(0));

async function start(message: Extract<FrontMessage, { t: 'start' }>): Promise<void> {
  const { listenersOfMachine, ...options } = message.options;
  const logger = pino({
    level: options.logLevel ?? 'info',
    base: { pid: process.pid, hostname: hostname(), engine: message.engine },
    hooks: {
      // The front logs every client request; the engine's lines about the same request would double them.
      logMethod(args, method, level) {
        if (level === 30 && args.some((a) => a === 'incoming request' || a === 'request completed')) return;
        method.apply(this, args);
      },
    },
  });
  try {
    // Loopback only: clients reach the engine through the front, media goes to its own ICE candidates.
    server = await createEngineServer({ ...options, host: '127.0.0.1', port: 0, logger }, message.previousPipelines ? { previousPipelines: message.previousPipelines } : undefined);
    // The machine's bindings, which the front keeps (in rooms.json, or Redis): an engine keeps no file of its own.
    // A change made while this engine starts reaches it once it is up (the front's catch-up).
    server.core.restoreRoomBindings(message.rooms);
    if (listenersOfMachine) server.core.listeners.shareOfMachine(listenersOfMachine.engines, listenersOfMachine.limit);
    await server.listen();
  } catch (e) {
    const error = isEarshotError(e)
      ? { code: e.code, statusCode: e.statusCode, title: e.title, message: e.message }
      : { message: (e as Error)?.message ?? String(e) };
    // Exit once the front has the reason; `stopping` keeps the disconnect handler from exiting 0 first.
    stopping = (async () => {
      await server?.close().catch(() => undefined);
      await new Promise<void>((resolve) => (process.connected ? process.send!({ t: 'failed', error } satisfies EngineMessage, undefined, {}, () => resolve()) : resolve()));
      process.exit(1);
    })();
    return;
  }
  const s = server;
  const address = s.app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  // A started session's first figures go with it, so that the front has a record of it should this process die;
  // an ended one's final figures, so that the front still answers for it once this process has restarted.
  s.sessions$.subscribe((event) => {
    const snapshot = s.core.peers.snapshot(event.peer);
    send({ t: 'session', event, ...(snapshot?.session === event.session ? { snapshot } : {}) });
  });
  // Clients' data channel messages stay with the processors of this engine (see isClientMessage).
  s.events$.subscribe((event) => {
    if (!isClientMessage(event)) send({ t: 'processor', event }, true);
  });
  const report = () => send({ t: 'report', report: reportOf(s) });
  report();
  setInterval(report, REPORT_INTERVAL_MS).unref();
  // What the front keeps of the live sessions (their figures and recordings) in case this process dies.
  // Skipped, not counted, while the channel is backed up: the next one replaces it.
  setInterval(() => {
    if (s.core.peers.size > 0 && unsent < MAX_UNSENT_MESSAGES) send({ t: 'peers', peers: s.core.peers.snapshots() });
  }, PEERS_REPORT_INTERVAL_MS).unref();
  send({ t: 'ready', port, threads: s.core.pool.threads });
}

function reportOf(s: EarshotServer): EngineReport {
  const stats = s.core.stats();
  const readiness = s.core.readiness();
  return {
    peers: stats.peers,
    pending: s.core.pendingSessions(),
    ready: readiness.ready,
    loadReasons: readiness.reasons,
    workerUtilization: stats.admission?.workerUtilization ?? stats.pool.utilization,
    poolThreads: stats.pool.threads,
    roomNames: stats.roomNames,
    uptimeSeconds: stats.uptimeSeconds,
    health: s.core.pool.health(),
    sessionsStarted: stats.sessionsStarted,
    sessionsEnded: stats.sessionsEnded,
    refusedBy: stats.refusedBy,
    endedBy: stats.endedBy,
    eventsDropped,
    poolCounters: Object.fromEntries(POOL_COUNTERS.map((k) => [k, stats.pool[k]])) as PoolCounters,
  };
}
