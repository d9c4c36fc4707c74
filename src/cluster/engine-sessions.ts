/**
 * The sessions the engine processes run, as the front knows them, and what
 * becomes of them when their engine dies.
 *
 * An engine that ends a session itself says so (a session event with the
 * peer's final statistics): its statistics stay readable on it, and the front
 * keeps them too, for after that engine has restarted (a rolling restart, a
 * drain) and forgotten them. One that dies (a crash, the OOM killer,
 * `kill -9`) says nothing: the front ends its sessions in its place, with
 * reason `engine-exited`, and makes them look like any ended session from
 * outside:
 * - `GET /stats/:peer` answers with the peer's last figures (the engine sends
 *   its live peers' statistics every second, and each session's first ones as
 *   it starts), `state: "ended"`, kept like an engine keeps its ended peers
 *   (the last `ENDED_KEPT`);
 * - their WAV recordings get a header that covers everything that reached the
 *   disk (the engine could not finalize them; see sinks/wav-repair.ts), and
 *   the recordings report what the files hold, `state: "failed"` with code
 *   `EARSHOT_ENGINE_EXITED`, since what the engine still held in memory is gone;
 * - the `ended` session event lists the recordings, and comes once the files
 *   are repaired, as an engine's comes once they are finalized;
 * - they are counted (`endedByExit`) for `/metrics`.
 */
import type { PeerStatsSnapshot } from '../core/peer-registry.js';
import type { SessionEvent } from '../core/earshot-core.js';
import { sessionEndFigures } from '../core/session-end-figures.js';
import { errors } from '../errors.js';
import type { RecordingInfo } from '../sinks/recorder.js';
import type { RecordingsStore } from '../sinks/recordings-store.js';
import { repairWavHeader } from '../sinks/wav-repair.js';

/** Ended peers kept for `GET /stats/:peer`, as many as each engine keeps of its own (core/peer-registry.ts). */
export const ENDED_KEPT = 1000;

export interface EngineSessionsOptions {
  store: RecordingsStore;
  /** An ended session, once its recordings are repaired. */
  emit(event: SessionEvent): void;
  log: {
    info(data: Record<string, unknown>, message: string): void;
    warn(data: Record<string, unknown>, message: string): void;
  };
}

/** How the engine process ended, as the front saw it. */
export interface EngineExitInfo {
  /** The engine's slot. */
  slot: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** `Date.now()`. */
  at: number;
}

interface LiveSession {
  engine: string;
  started: SessionEvent;
  /** Its latest statistics from the engine. */
  snapshot: PeerStatsSnapshot | undefined;
}

export class EngineSessions {
  /** Sessions ended because their engine died, since the front started. */
  endedByExit = 0;
  readonly #o: EngineSessionsOptions;
  readonly #live = new Map<string, LiveSession>();
  /** Ended peers, the newest `ENDED_KEPT`: their final statistics, with the slot of the engine that ran them. */
  readonly #ended = new Map<string, PeerStatsSnapshot & { engine: number }>();
  /** Exits still repairing recordings; their events are not out yet. */
  readonly #pending = new Set<Promise<void>>();

  constructor(options: EngineSessionsOptions) {
    this.#o = options;
  }

  /** A session an engine started, with its first statistics if it sent them. */
  started(engine: string, event: SessionEvent, snapshot: PeerStatsSnapshot | undefined): void {
    this.#live.set(event.session, { engine, started: event, snapshot });
    // A new session of the peer replaces what was kept of an earlier one, as on an engine.
    this.#ended.delete(event.peer);
  }

  /** A session its engine (in `slot`) ended itself, with the peer's final statistics if it sent them. */
  ended(event: SessionEvent, slot: number, final?: PeerStatsSnapshot): void {
    this.#live.delete(event.session);
    if (final?.session === event.session && final.state === 'ended') this.#remember({ ...final, engine: slot });
  }

  /** An engine's live peers' statistics. */
  report(engine: string, peers: readonly PeerStatsSnapshot[]): void {
    for (const p of peers) {
      const s = this.#live.get(p.session);
      if (s && s.engine === engine) s.snapshot = p;
    }
  }

  /** The final statistics of an ended peer (its newest session), if kept. */
  endedPeer(peer: string): (PeerStatsSnapshot & { engine: number }) | undefined {
    return this.#ended.get(peer);
  }

  /**
   * Ends the sessions of an engine that exited (`lost`: those placement had
   * on it). Their statistics are readable at once; their recordings are
   * repaired and their `ended` events emitted when the returned promise
   * settles (`settled()` waits for every such promise).
   */
  engineExited(engine: string, lost: ReadonlyArray<{ peer: string; session: string }>, exit: EngineExitInfo): Promise<void> {
    this.endedByExit += lost.length;
    const ending = lost.map(({ peer, session }) => {
      const live = this.#live.get(session);
      this.#live.delete(session);
      const record = live?.snapshot ? this.#keep(live.snapshot, exit) : undefined;
      return { peer, session, started: live?.started, record };
    });
    // Anything else of that engine's (a session placement never learnt of) is gone with it too.
    for (const [session, s] of this.#live) if (s.engine === engine) this.#live.delete(session);
    const done = (async () => {
      for (const e of ending) {
        const recordings = e.record ? await this.#repair(e.record, exit) : [];
        const event: SessionEvent = {
          type: 'ended',
          peer: e.peer,
          room: e.started?.room ?? e.record?.room ?? '',
          session: e.session,
          pipeline: e.started?.pipeline ?? e.record?.pipeline ?? '',
          reason: 'engine-exited',
          recordings: recordings.map((r) => r.name),
          at: exit.at,
        };
        this.#o.log.info(
          {
            room: event.room,
            peer: e.peer,
            session: e.session,
            pipeline: event.pipeline,
            reason: 'engine-exited',
            engine: exit.slot,
            // What an engine's own line says, as of its last report (at most a second before it died):
            // from the session's creation, as an engine counts it, to the engine's exit.
            ...(e.record ? sessionEndFigures(Date.parse(e.record.createdAt), exit.at, e.record.rtp) : { seconds: null, packets: null, lost: null, lossRatio: null, jitterMs: null }),
            recordings: recordings.map((r) => ({ name: r.name, seconds: r.seconds, bytes: r.bytes })),
          },
          'session ended',
        );
        this.#o.emit(event);
      }
    })();
    this.#pending.add(done);
    void done.finally(() => this.#pending.delete(done));
    return done;
  }

  /** Resolves once every exited engine's sessions have had their recordings repaired and their events emitted. */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /** The last figures of a session that ended with its engine, kept as an ended peer. */
  #keep(last: PeerStatsSnapshot, exit: EngineExitInfo): PeerStatsSnapshot & { engine: number } {
    const record: PeerStatsSnapshot & { engine: number } = {
      ...last,
      state: 'ended',
      endReason: 'engine-exited',
      durationSeconds: Math.round((exit.at - Date.parse(last.createdAt)) / 100) / 10,
      engine: exit.slot,
    };
    this.#remember(record);
    return record;
  }

  /** Keeps an ended peer's record, newest last; the oldest goes past `ENDED_KEPT`. */
  #remember(record: PeerStatsSnapshot & { engine: number }): void {
    this.#ended.delete(record.peer);
    this.#ended.set(record.peer, record);
    if (this.#ended.size > ENDED_KEPT) this.#ended.delete(this.#ended.keys().next().value!);
  }

  /**
   * The recordings of a session whose engine died: a WAV that was being
   * written gets a header covering what reached the disk; each then reports
   * what its file holds. The kept record is updated with them.
   */
  async #repair(record: PeerStatsSnapshot & { engine: number }, exit: EngineExitInfo): Promise<RecordingInfo[]> {
    const how = exit.signal ?? `exit code ${exit.code}`;
    const stoppedAt = new Date(exit.at).toISOString();
    const recordings = await Promise.all(
      record.recordings.map(async (r): Promise<RecordingInfo> => {
        // A finalized or failed recording is as its engine left it.
        if (r.state !== 'recording') return r;
        let seconds = r.seconds;
        let bytes = r.bytes;
        try {
          if (r.format === 'wav') {
            const repaired = await repairWavHeader(this.#o.store.pathOf(r.name));
            if (repaired && repaired.dataBytes !== repaired.previousDataBytes) {
              this.#o.log.warn({ recording: r.name, engine: exit.slot, seconds: repaired.seconds, coveredBefore: repaired.previousDataBytes, covered: repaired.dataBytes }, 'recording header rewritten after its engine exited: it now covers all the audio on disk');
            }
          }
          // What the file holds now (for Ogg Opus: up to its last complete page).
          const entry = await this.#o.store.describe(r.name);
          seconds = entry.seconds;
          bytes = entry.bytes;
        } catch (e) {
          this.#o.log.warn({ recording: r.name, engine: exit.slot, err: (e as Error).message }, 'recording of a session whose engine exited could not be read');
        }
        const failure = errors.ENGINE_EXITED(exit.slot, how, r.format);
        return { ...r, state: 'failed', stoppedAt, seconds, bytes, error: failure.message, code: failure.code };
      }),
    );
    const recording = recordings.find((r) => r.name === record.recording?.name) ?? record.recording;
    // The record is shared with `#ended` (unless a newer one replaced it): updated in place.
    Object.assign(record, { recordings, recording });
    return recordings;
  }
}
