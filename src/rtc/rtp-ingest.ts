/**
 * Per-stream RTP ingest: a small reorder window, loss and DTX detection, and the
 * RFC 3550 receiver statistics. werift delivers packets in arrival order with no
 * jitter buffer, so duplicates and reordering reach us here.
 *
 * Output is a sequence of encoded frames with media positions (48 kHz samples
 * since the stream's first packet), in order, with lost packets marked so the
 * worker can conceal them. Gaps with no packets at all (DTX) are left as gaps in
 * position; the worker fills them with silence.
 *
 * Media time follows the RTP timestamps, except where they jump. A gap the
 * timestamps open must be explained: by the time between the packets'
 * arrivals (a pause, DTX, a network outage), or as pauses a DTX sender makes
 * and packets lost (summed over the stream, at most `GAP_PER_MEDIA` times the
 * media it sent, which a file sent faster than real time with DTX also keeps
 * within), with `maxTimestampJumpMs` of slack; in one step, lost packets may
 * explain at most that slack again. A step beyond that, or a timestamp that
 * goes back while the sequence number goes on, is a jump: one packet from a
 * buggy or hostile sender could otherwise put hours of silence into a
 * recording (a 32-bit step is 12 hours at 48 kHz), or make every later packet
 * late. At a jump media time goes on by what the arrivals and the lost packets
 * explain, as it does when the SSRC changes, and the jump is counted
 * (`timestampJumps`).
 */
import { opusPacketSamples } from '../media/opus-toc.js';
import type { EncodedFrame } from '../media/frames.js';

export interface RtpInput {
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  payload: Uint8Array;
  /** Bytes of RTP header (for header-byte counters). */
  headerBytes: number;
  /** `performance.now()` at arrival. */
  arrival: number;
}


export interface RtpIngestOptions {
  /** RTP clock rate; Opus is always 48000 (RFC 7587). */
  clockRate?: number;
  /**
   * Packets held back waiting for a missing one before it is declared lost.
   * Default 5 (100 ms at 20 ms packets); 0 disables reordering.
   */
  reorderPackets?: number;
  /** Longest time in ms a packet waits for a missing predecessor. Default 60. */
  reorderDelayMs?: number;
  /** Longest run of lost packets to conceal; beyond it the gap becomes silence. Default 10. */
  maxConcealedPackets?: number;
  /**
   * Slack, in ms, on the gap a timestamp step may open beyond what lost
   * packets, the packets' arrival and DTX explain (see the module comment),
   * in one step and summed over the stream. Default 30000.
   */
  maxTimestampJumpMs?: number;
}

/**
 * `frame`, which waited in the reorder buffer, as released at `now`: its
 * latency (`arrival` → the sinks) counts from the end of the wait. The wait
 * is the buffer's own policy (up to `reorderDelayMs` for a missing packet),
 * as the pool's quiet hold is; what the network did shows in the loss and
 * reorder counts. Counted from the packet's arrival, every loss would put
 * the frames after it tens of ms late, and a latency limit (admission's
 * `maxLatencyMs`) would read a lossy network as an overloaded server.
 */
function releasedAt(frame: EncodedFrame, now: number): EncodedFrame {
  return frame.arrival >= now ? frame : { ...frame, arrival: now };
}

/** RFC 3550 §6.4.1 receiver statistics, plus counters RTCP does not carry. */
export interface RtpReceiveStats {
  ssrc: number | undefined;
  /** Packets received, including late and duplicate ones (RFC 3550 counts them). */
  packetsReceived: number;
  /** Expected packets: extended highest sequence number − first + 1, summed over the sources (SSRCs) the stream had. */
  packetsExpected: number;
  /** Cumulative lost = expected − received (RFC 3550; may be negative with duplicates). */
  packetsLost: number;
  /** Lost share of expected, 0..1 (negative losses count as 0). */
  lossRatio: number;
  packetsDuplicated: number;
  /** Packets that arrived after a later-numbered one. */
  packetsReordered: number;
  /** Packets that arrived after their slot was already declared lost or played out. */
  packetsLate: number;
  /**
   * Packets dropped and not counted as received: a sequence number 3000 or more
   * ahead of the highest, or over 100 behind it, that the next packet did not
   * follow (RFC 3550 A.1). Two in a row are a restarted sequence and are taken,
   * unless they are back by over 100 with timestamps a little behind too:
   * stragglers, taken as late packets.
   */
  packetsDiscarded: number;
  /** RTP payload bytes received. */
  bytesReceived: number;
  headerBytesReceived: number;
  /** Interarrival jitter, RFC 3550 §6.4.1 / A.8, in seconds. */
  jitter: number;
  /** Payload bitrate over the last 2 s, bits per second. */
  bitrate: number;
  /** Seconds of media covered by gaps with no packets and no loss (DTX). */
  dtxSeconds: number;
  /** Timestamp steps not taken as media time (see the module comment): media time went on by what the arrivals and lost packets explain. */
  timestampJumps: number;
  firstPacketAt: number | undefined;
  lastPacketAt: number | undefined;
}

/** The figures of an RTCP report block about one source, as the ingest counts them (RFC 3550 A.1, A.3, A.8). */
export interface ReportFigures {
  ssrc: number;
  /** Extended highest sequence number, in the sender's numbering: wraps × 65536 + the highest. */
  extendedHighest: number;
  /** Packets expected and received since the source's first packet (a restarted sequence adds no leap). */
  expected: number;
  received: number;
  /** Interarrival jitter, timestamp units. */
  jitter: number;
}

const SEQ_MOD = 0x10000;
/**
 * RFC 3550 A.1: a sequence number 3000 or more ahead of the highest, or more
 * than 100 behind it, is not taken at once. If the next packet follows it, the
 * sender restarted its sequence (without a new SSRC) and the two are taken
 * with no loss counted for the leap; otherwise it is dropped, uncounted.
 */
const MAX_DROPOUT = 3000;
const MAX_MISORDER = 100;
const RECENT_SLOTS = 1024;
const BITRATE_WINDOW_MS = 2000;
const BITRATE_BUCKET_MS = 100;
/** The longest Opus packet (RFC 6716: 120 ms): room each lost packet may explain in one step's gap. */
const MAX_PACKET_SAMPLES = 5760;
/**
 * Pauses (and loss) the arrivals do not explain, per unit of media sent: a
 * DTX sender's, which libopus breaks with an update every 400 ms of silence
 * (20 ms, and a DTX frame), come to 9; with room.
 */
const GAP_PER_MEDIA = 20;

export class RtpIngest {
  readonly #clockRate: number;
  readonly #reorderPackets: number;
  readonly #reorderDelayMs: number;
  readonly #maxConcealed: number;
  /** `maxTimestampJumpMs` in samples. */
  readonly #maxJump: number;
  readonly #emit: (frame: EncodedFrame) => void;

  // Sequence and timestamp extension (RFC 3550 A.1), relative to the first packet.
  #ssrc: number | undefined;
  #baseSeq = 0;
  #maxExtSeq = -1;
  #lastTs = 0;
  #extTs = 0;
  #baseTs = 0;
  #positionOffset = 0; // keeps positions continuous across an SSRC change and a timestamp jump
  // The newest packet so far (highest sequence number): its position, length, sequence number and arrival.
  #newestPosition = -1;
  #newestSamples = 0;
  #newestSeq = 0;
  #newestArrival = 0;
  /** Media the newest packets carried, and the gaps between them the arrivals did not explain, in samples. */
  #mediaSamples = 0;
  #unexplainedGap = 0;
  #timestampJumps = 0;
  /** A packet whose sequence number leapt, held until the next one says whether the sequence restarted. */
  #leap: RtpInput | undefined;
  #leapsDropped = 0;

  // Reorder buffer, keyed by extended sequence number.
  readonly #held = new Map<number, { frame: EncodedFrame; extSeq: number; heldAt: number }>();
  #nextSeq = 0;
  #nextPosition = 0;
  #timer: NodeJS.Timeout | undefined;
  // Extended seqs seen recently, for duplicate detection: slot seq % size holds the last seq seen there.
  readonly #recent = new Float64Array(RECENT_SLOTS).fill(-1);

  // Statistics.
  #received = 0;
  #duplicates = 0;
  #reordered = 0;
  #late = 0;
  #bytes = 0;
  #headerBytes = 0;
  #jitter = 0;
  #lastTransit: number | undefined;
  #dtxSamples = 0;
  #firstAt: number | undefined;
  #lastAt: number | undefined;
  readonly #buckets = new Float64Array(BITRATE_WINDOW_MS / BITRATE_BUCKET_MS);
  #bucketIndex = -1;

  constructor(onFrame: (frame: EncodedFrame) => void, options: RtpIngestOptions = {}) {
    this.#emit = onFrame;
    this.#clockRate = options.clockRate ?? 48000;
    this.#reorderPackets = options.reorderPackets ?? 5;
    this.#reorderDelayMs = options.reorderDelayMs ?? 60;
    this.#maxConcealed = options.maxConcealedPackets ?? 10;
    this.#maxJump = ((options.maxTimestampJumpMs ?? 30_000) / 1000) * this.#clockRate;
  }

  /** Takes one packet. `p` is read, not kept: a caller may reuse one object for every packet. */
  receive(p: RtpInput): void {
    if (this.#ssrc !== p.ssrc) {
      if (this.#fromPreviousSource(p)) return;
      this.#startSource(p);
    } else {
      const ahead = (p.sequenceNumber - this.#lastSeq) & 0xffff;
      if (ahead >= MAX_DROPOUT && ahead <= SEQ_MOD - MAX_MISORDER) {
        const leap = this.#leap;
        if (leap === undefined || p.sequenceNumber !== ((leap.sequenceNumber + 1) & 0xffff)) {
          // Not taken yet (RFC 3550 A.1): a restart only if the next packet follows it.
          this.#dropLeap();
          this.#leap = { ...p };
          return;
        }
        this.#leap = undefined;
        // Two in a row: the sender restarted its sequence. It goes on from the highest sequence
        // number so far, so the leap counts no packets lost (RFC 3550 A.1 re-syncs). Unless they
        // are two stragglers (a network queue that held them for seconds): RFC 3550 A.1 would
        // re-sync on them too; taken as they are, they are late, and media time and the loss
        // count stay as they were.
        if (!this.#straggler(leap)) {
          this.#seqCycleBase = this.#maxExtSeq + 1 - leap.sequenceNumber;
          this.#lastSeq = leap.sequenceNumber;
          this.#cycles = 0;
        }
        this.#take(leap);
      } else this.#dropLeap();
    }
    this.#take(p);
  }

  /**
   * Whether a leap is a packet from this sequence that came very late: over
   * 100 behind by its sequence number, and behind the newest packet by its
   * timestamp, by no more than `maxTimestampJumpMs`. A restarted sender's
   * timestamps start anywhere; a straggler's are where its sequence number
   * says.
   */
  #straggler(leap: RtpInput): boolean {
    const ahead = (leap.sequenceNumber - this.#lastSeq) & 0xffff;
    const behind = (this.#lastTs - leap.timestamp) >>> 0;
    return ahead > SEQ_MOD / 2 && behind > 0 && behind <= this.#maxJump;
  }

  /**
   * A packet of the source before the current one, from before the switch
   * (not ahead of that source's highest sequence number): a straggler the
   * network held. Counted as received (for the old source) and late, and
   * dropped. Taken as a new source, it had reset the current one's sequence,
   * duplicate and jitter state, and played the old source's audio inside the
   * new one's. A packet ahead of it is that source resuming: a new source.
   */
  #fromPreviousSource(p: RtpInput): boolean {
    const previous = this.#previousSource;
    if (previous === undefined || p.ssrc !== previous.ssrc) return false;
    const ahead = (p.sequenceNumber - previous.highest) & 0xffff;
    if (ahead !== 0 && ahead < SEQ_MOD / 2) return false;
    this.#received++;
    this.#receivedBefore++;
    this.#late++;
    this.#bytes += p.payload.length;
    this.#headerBytes += p.headerBytes;
    return true;
  }

  /** A leap the next packet did not follow: dropped, uncounted (RFC 3550 A.1), and counted as such. */
  #dropLeap(): void {
    if (this.#leap === undefined) return;
    this.#leap = undefined;
    this.#leapsDropped++;
  }

  #take(p: RtpInput): void {
    this.#received++;
    this.#bytes += p.payload.length;
    this.#headerBytes += p.headerBytes;
    this.#firstAt ??= p.arrival;
    this.#lastAt = p.arrival;
    this.#countBitrate(p.arrival, p.payload.length);

    const extSeq = this.#extendSeq(p.sequenceNumber);
    if (this.#recent[extSeq % RECENT_SLOTS] === extSeq) {
      this.#duplicates++;
      return;
    }
    this.#remember(extSeq);
    const newest = extSeq > this.#maxExtSeq;
    if (newest) {
      this.#maxExtSeq = extSeq;
    } else {
      this.#reordered++;
    }
    const extTs = this.#extendTs(p.timestamp);
    let position = extTs - this.#baseTs + this.#positionOffset;
    const samples = opusPacketSamples(p.payload);
    if (newest) position = this.#followNewest(p, extSeq, extTs, position, samples || 960);
    else if (position >= this.#newestPosition) {
      // A packet sent before the newest one cannot belong after it: a timestamp that jumped
      // (the newest packets' steps are checked, this one's is not). Not played, so it cannot
      // open a gap or push the packets after it out as late.
      this.#late++;
      return;
    }
    this.#updateJitter(p);
    if (extSeq < this.#nextSeq) {
      this.#late++; // its slot was already concealed or played out
      return;
    }
    const frame: EncodedFrame = { position, payload: p.payload, samples, arrival: p.arrival };
    if (extSeq === this.#nextSeq && this.#held.size === 0) {
      // The usual case, the next packet in order with nothing held: played out at once
      // (what #release would do, without the reorder buffer's entry and timer).
      this.#nextSeq++;
      this.#play(frame);
      return;
    }
    this.#held.set(extSeq, { frame, extSeq, heldAt: p.arrival });
    this.#release(p.arrival);
  }

  /**
   * Checks the newest packet's timestamp step (see the module comment) and
   * returns its position: as the timestamp says, or, at a jump, the end of
   * the newest packet before it plus the gap its lost packets and the time
   * between the arrivals explain. A jump re-anchors the timestamps, so the
   * packets after it follow this one.
   */
  #followNewest(p: RtpInput, extSeq: number, extTs: number, position: number, samples: number): number {
    if (this.#newestPosition >= 0) {
      const end = this.#newestPosition + this.#newestSamples;
      const lost = Math.max(0, extSeq - this.#newestSeq - 1);
      // The gap the time between the arrivals does not explain: lost packets may explain up to
      // the slack more of it in this step; over the stream it counts as DTX pauses do.
      const waited = Math.max(0, Math.round(((p.arrival - this.#newestArrival) / 1000) * this.#clockRate) - this.#newestSamples);
      const unexplained = Math.max(0, position - end - waited);
      const lostRoom = Math.min(lost * MAX_PACKET_SAMPLES, this.#maxJump);
      const budget = Math.max(0, GAP_PER_MEDIA * this.#mediaSamples + this.#maxJump - this.#unexplainedGap);
      const jump = position < this.#newestPosition || unexplained > lostRoom + this.#maxJump || unexplained > budget;
      if (jump) {
        // The lost packets keep their room (at the length of the packet before), as far as the budget goes.
        const lostGap = Math.min(lost * this.#newestSamples, budget);
        const anchored = end + Math.max(waited, lostGap);
        this.#unexplainedGap += Math.max(0, lostGap - waited);
        this.#positionOffset += anchored - position;
        this.#lastTs = p.timestamp;
        this.#extTs = extTs;
        // Transit times on the two sides of the jump do not compare (RFC 3550 A.8 assumes one timeline).
        this.#lastTransit = undefined;
        this.#timestampJumps++;
        position = anchored;
      } else this.#unexplainedGap += unexplained;
    }
    this.#mediaSamples += samples;
    this.#newestPosition = position;
    this.#newestSamples = samples;
    this.#newestSeq = extSeq;
    this.#newestArrival = p.arrival;
    return position;
  }

  /** Emits everything held (end of stream), as released at `now` (the clock of the packets' `arrival`). */
  flush(now = performance.now()): void {
    this.#dropLeap();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#held.size > 0) this.#skipToNextHeld(now);
  }

  /** What an RTCP report block about the current source says (RFC 3550 §6.4.1), before the interval's fraction lost. */
  reportFigures(): ReportFigures | undefined {
    if (this.#ssrc === undefined || this.#maxExtSeq < 0) return undefined;
    return {
      ssrc: this.#ssrc,
      extendedHighest: (this.#cycles * SEQ_MOD + this.#lastSeq) % 2 ** 32,
      expected: this.#maxExtSeq - this.#baseSeq + 1,
      received: this.#received - this.#receivedBefore,
      jitter: Math.floor(this.#jitter),
    };
  }

  stats(now: number): RtpReceiveStats {
    const expected = this.#expectedBefore + (this.#maxExtSeq < 0 ? 0 : this.#maxExtSeq - this.#baseSeq + 1);
    const lost = expected - this.#received;
    return {
      ssrc: this.#ssrc,
      packetsReceived: this.#received,
      packetsExpected: expected,
      packetsLost: lost,
      lossRatio: expected > 0 ? Math.max(0, lost) / expected : 0,
      packetsDuplicated: this.#duplicates,
      packetsReordered: this.#reordered,
      packetsLate: this.#late,
      packetsDiscarded: this.#leapsDropped,
      bytesReceived: this.#bytes,
      headerBytesReceived: this.#headerBytes,
      jitter: this.#jitter / this.#clockRate,
      bitrate: this.#bitrate(now),
      dtxSeconds: this.#dtxSamples / this.#clockRate,
      timestampJumps: this.#timestampJumps,
      firstPacketAt: this.#firstAt,
      lastPacketAt: this.#lastAt,
    };
  }

  #startSource(p: RtpInput): void {
    if (this.#ssrc !== undefined) {
      this.#previousSource = { ssrc: this.#ssrc, highest: this.#lastSeq };
      // The statistics go on over every source; a report block is about the current one.
      this.#expectedBefore += Math.max(0, this.#maxExtSeq - this.#baseSeq + 1);
      this.#receivedBefore = this.#received;
      // A new SSRC (sender restarted its stream): play out what we hold, then
      // continue media time where the old source ended.
      this.flush(p.arrival);
      this.#positionOffset = this.#nextPosition;
      this.#recent.fill(-1);
      this.#lastTransit = undefined;
      this.#newestPosition = -1; // the new source's steps are checked from its second packet
    }
    this.#ssrc = p.ssrc;
    // Sequence numbers are extended into a space that keeps growing across sources.
    const start = this.#maxExtSeq + 1 + SEQ_MOD; // leave room for a few reordered predecessors
    this.#baseSeq = start;
    this.#maxExtSeq = start - 1;
    this.#nextSeq = start;
    this.#seqCycleBase = start - p.sequenceNumber;
    this.#lastSeq = p.sequenceNumber;
    this.#cycles = 0;
    this.#lastTs = p.timestamp;
    this.#extTs = p.timestamp;
    this.#baseTs = p.timestamp;
  }

  #seqCycleBase = 0;
  #lastSeq = 0;
  /** The source before the current one, for its stragglers (`#fromPreviousSource`). */
  #previousSource: { ssrc: number; highest: number } | undefined;
  /** Packets expected from earlier sources, and received before the current one started. */
  #expectedBefore = 0;
  #receivedBefore = 0;
  /** Wraps of the sender's sequence number since its first packet or restart (RFC 3550 A.1 `cycles`, counted in wraps). */
  #cycles = 0;

  /** Extends a 16-bit sequence number to a monotonic one (RFC 3550 A.1, without probation). */
  #extendSeq(seq: number): number {
    let delta = seq - this.#lastSeq;
    if (delta > SEQ_MOD / 2) delta -= SEQ_MOD;
    else if (delta < -SEQ_MOD / 2) delta += SEQ_MOD;
    const ext = this.#lastSeq + this.#seqCycleBase + delta;
    if (delta > 0) {
      if (seq < this.#lastSeq) this.#cycles++;
      this.#seqCycleBase = ext - seq;
      this.#lastSeq = seq;
    }
    return ext;
  }

  /** Extends a 32-bit timestamp relative to the last one seen. */
  #extendTs(ts: number): number {
    const delta = (ts - this.#lastTs) | 0; // signed 32-bit difference
    const ext = this.#extTs + delta;
    if (delta > 0) {
      this.#lastTs = ts;
      this.#extTs = ext;
    }
    return ext;
  }

  #remember(extSeq: number): void {
    this.#recent[extSeq % RECENT_SLOTS] = extSeq;
  }

  /** RFC 3550 A.8: J += (|D(i−1,i)| − J) / 16, in timestamp units. */
  #updateJitter(p: RtpInput): void {
    const arrivalUnits = (p.arrival / 1000) * this.#clockRate;
    const transit = arrivalUnits - p.timestamp;
    if (this.#lastTransit !== undefined) {
      let d = transit - this.#lastTransit;
      // Timestamps wrap at 2^32; keep the difference in range.
      if (d > 2 ** 31) d -= 2 ** 32;
      else if (d < -(2 ** 31)) d += 2 ** 32;
      this.#jitter += (Math.abs(d) - this.#jitter) / 16;
    }
    this.#lastTransit = transit;
  }

  #release(now: number): void {
    for (;;) {
      const next = this.#held.get(this.#nextSeq);
      if (next) {
        this.#held.delete(this.#nextSeq);
        this.#play(releasedAt(next.frame, now));
        this.#nextSeq++;
        continue;
      }
      if (this.#held.size === 0) break;
      const oldest = this.#oldestHeld();
      if (this.#held.size > this.#reorderPackets || now - oldest.heldAt >= this.#reorderDelayMs) {
        this.#skipToNextHeld(now);
        continue;
      }
      break;
    }
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#held.size > 0) {
      const wait = Math.max(1, this.#reorderDelayMs - (now - this.#oldestHeld().heldAt));
      this.#timer = setTimeout(() => this.#release(performance.now()), wait);
      this.#timer.unref();
    }
  }

  #oldestHeld(): { frame: EncodedFrame; extSeq: number; heldAt: number } {
    let oldest: { frame: EncodedFrame; extSeq: number; heldAt: number } | undefined;
    for (const h of this.#held.values()) if (!oldest || h.extSeq < oldest.extSeq) oldest = h;
    return oldest!;
  }

  /** Declares the packets before the lowest held one lost, and plays that one, as released at `now`. */
  #skipToNextHeld(now: number): void {
    const next = this.#oldestHeld();
    next.frame = releasedAt(next.frame, now);
    const missing = next.extSeq - this.#nextSeq;
    const span = next.frame.position - this.#nextPosition;
    // The lost packets past the concealment limit: their time becomes silence (the gap #play
    // leaves), but it is loss, not DTX.
    let unconcealedLoss = 0;
    if (missing > 0 && span > 0) {
      const count = Math.min(missing, this.#maxConcealed);
      const each = Math.min(5760, Math.floor(span / missing));
      for (let i = 0; i < count && each > 0; i++) {
        this.#emit({ position: this.#nextPosition, payload: null, samples: each, arrival: next.frame.arrival });
        this.#nextPosition += each;
      }
      unconcealedLoss = (missing - count) * each;
    }
    this.#held.delete(next.extSeq);
    this.#nextSeq = next.extSeq + 1;
    this.#play(next.frame, unconcealedLoss);
  }

  /** Plays `frame`; `lossSamples` of the gap before it, if any, stood for lost packets rather than a pause. */
  #play(frame: EncodedFrame, lossSamples = 0): void {
    if (frame.position < this.#nextPosition) {
      // Overlaps audio already played out (a sender timestamp glitch): drop it.
      this.#late++;
      return;
    }
    const gap = frame.position - this.#nextPosition;
    // No packets were sent: DTX (the part of the gap lost packets account for is loss).
    if (gap > lossSamples && this.#nextPosition > 0) this.#dtxSamples += gap - lossSamples;
    this.#emit(frame);
    this.#nextPosition = frame.position + (frame.samples || 960);
  }

  #countBitrate(now: number, bytes: number): void {
    const bucket = Math.floor(now / BITRATE_BUCKET_MS);
    this.#advanceBuckets(bucket);
    this.#buckets[bucket % this.#buckets.length] += bytes;
  }

  #advanceBuckets(bucket: number): void {
    if (this.#bucketIndex < 0) this.#bucketIndex = bucket;
    const n = this.#buckets.length;
    for (let b = Math.max(this.#bucketIndex + 1, bucket - n + 1); b <= bucket; b++) this.#buckets[b % n] = 0;
    if (bucket > this.#bucketIndex) this.#bucketIndex = bucket;
  }

  #bitrate(now: number): number {
    if (this.#firstAt === undefined) return 0;
    this.#advanceBuckets(Math.floor(now / BITRATE_BUCKET_MS));
    let sum = 0;
    for (const b of this.#buckets) sum += b;
    const windowMs = Math.min(BITRATE_WINDOW_MS, Math.max(BITRATE_BUCKET_MS, now - this.#firstAt));
    return (sum * 8) / (windowMs / 1000);
  }
}
