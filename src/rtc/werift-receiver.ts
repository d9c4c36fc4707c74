/**
 * Three per-packet costs of werift's RTP receiver, removed at load.
 *
 * `RTCRtpReceiver.handleRTP` runs for every received RTP packet. While no
 * transport-wide congestion control is set up (earshot's answers never
 * negotiate transport-cc: a receive-only audio server has no bandwidth to
 * estimate), it reads `twccEnabled` on every packet, and that getter builds
 * `codecArray` (`Object.values` of the codec map, then a sort) and searches
 * the first codec's feedback list: an array per packet, ~12 % of the main
 * thread's allocation at K = 40 by the capacity bench's heap profile. Then it
 * calls the async `runRtcp()`, which returns at once after the first call but,
 * being async, still allocates a promise per packet.
 *
 * werift changes a receiver's codec map only in `prepareReceive` (which
 * `resyncCodecs` ends with), so the three feedback getters (`twccEnabled`,
 * `nackEnabled`, `pliEnabled`) are computed once per codec map and kept until
 * the next `prepareReceive`; and `runRtcp` returns a settled promise without
 * entering werift's function while the RTCP loop is already running or the
 * receiver is stopped, exactly when werift's own function would return at
 * once. Same values, same behaviour: test/rtc/werift-receiver.test.ts compares
 * them with werift's own. A werift whose functions no longer look as expected
 * is left as it is.
 *
 * `handleRTP` also reads its codec's `name` twice per packet, and that getter
 * splits the MIME type each time (a string array per read, ~3 % of the main
 * thread's allocation at K = 20). The name of a MIME type never changes, so it
 * is split once per MIME type; an unexpected value still takes werift's getter.
 *
 * The upstream change: compute the feedback flags in `prepareReceive`, call
 * `runRtcp()` from `handleRTP` only `if (!this.rtcpRunning)`, and read
 * `codec.name` once per packet.
 *
 * The report loop `runRtcp` starts is werift's with RFC 3550's interval
 * (receiver-reports.ts).
 */
import { RTCRtpCodecParameters, RTCRtpReceiver } from 'werift';
import { reportsLikeWerift, runReceiverReports, type ReportingReceiver } from './receiver-reports.js';

type Feedback = RTCRtpReceiver['twccEnabled'];
type FeedbackName = 'twccEnabled' | 'nackEnabled' | 'pliEnabled';
const FEEDBACK: readonly FeedbackName[] = ['twccEnabled', 'nackEnabled', 'pliEnabled'];

/** The receiver internals this module touches (werift declares them public). */
interface ReceiverInternals {
  rtcpRunning: boolean;
  stopped: boolean;
  prepareReceive(params: unknown): void;
  runRtcp(): Promise<void>;
}

const proto = RTCRtpReceiver.prototype as unknown as ReceiverInternals & Record<FeedbackName, Feedback>;

/** werift's own getters and functions, as loaded (the test compares against them). */
export const weriftReceiver = {
  getters: Object.fromEntries(FEEDBACK.map((name) => [name, Object.getOwnPropertyDescriptor(proto, name)?.get])) as Record<FeedbackName, ((this: unknown) => Feedback) | undefined>,
  prepareReceive: proto.prepareReceive,
  runRtcp: proto.runRtcp,
};

/** Whether werift's receiver is the one this module was written against. */
export const patchesWeriftReceiver =
  FEEDBACK.every((name) => /codecArray/.test(String(weriftReceiver.getters[name]))) &&
  /codecs\[/.test(String(weriftReceiver.prepareReceive)) &&
  /rtcpRunning/.test(String(weriftReceiver.runRtcp));

/** Per receiver: its feedback getters' values for the current codec map. */
const feedbackOf = new WeakMap<object, Record<FeedbackName, Feedback>>();
const SETTLED: Promise<void> = Promise.resolve();

if (patchesWeriftReceiver) {
  for (const name of FEEDBACK) {
    Object.defineProperty(proto, name, {
      configurable: true,
      enumerable: false,
      get(this: object): Feedback {
        let cached = feedbackOf.get(this);
        if (!cached) {
          cached = Object.fromEntries(FEEDBACK.map((n) => [n, weriftReceiver.getters[n]!.call(this)])) as Record<FeedbackName, Feedback>;
          feedbackOf.set(this, cached);
        }
        return cached[name];
      },
    });
  }
  proto.prepareReceive = function prepareReceive(this: ReceiverInternals, params: unknown): void {
    feedbackOf.delete(this);
    weriftReceiver.prepareReceive.call(this, params);
    feedbackOf.delete(this);
  };
  const rfcInterval = reportsLikeWerift(weriftReceiver.runRtcp);
  proto.runRtcp = function runRtcp(this: ReceiverInternals): Promise<void> {
    if (this.rtcpRunning || this.stopped) return SETTLED;
    return rfcInterval ? runReceiverReports(this as unknown as ReportingReceiver) : weriftReceiver.runRtcp.call(this);
  };
}

const codecProto = RTCRtpCodecParameters.prototype as unknown as { mimeType: unknown };

/** werift's own `RTCRtpCodecParameters.name` getter, as loaded (the test compares against it). */
export const weriftCodecName = Object.getOwnPropertyDescriptor(codecProto, 'name')?.get as ((this: unknown) => string | undefined) | undefined;

/** Whether werift's codec `name` is the MIME-type split this module caches. */
export const cachesCodecName = /split\("\/"\)\[1\]/.test(String(weriftCodecName));

/** MIME type → name, for the few MIME types a server sees (bounded all the same: offers come from clients). */
const namesByMime = new Map<string, string | undefined>();
const NAMES_KEPT = 64;

if (cachesCodecName) {
  Object.defineProperty(codecProto, 'name', {
    configurable: true,
    enumerable: false,
    get(this: { mimeType: unknown }): string | undefined {
      const mime = this.mimeType;
      if (typeof mime !== 'string') return weriftCodecName!.call(this);
      let name = namesByMime.get(mime);
      if (name === undefined && !namesByMime.has(mime)) {
        name = mime.split('/')[1];
        if (namesByMime.size >= NAMES_KEPT) namesByMime.clear();
        namesByMime.set(mime, name);
      }
      return name;
    },
  });
}
