/**
 * STUN binding requests authenticated, as ICE requires (RFC 8445 §7.3,
 * RFC 5389 §10.1.2): a request is answered and acted on only when its
 * USERNAME names this agent's ufrag on the left and its MESSAGE-INTEGRITY
 * verifies with this agent's password.
 *
 * werift 0.25's `Connection.ensureProtocol` checks neither: it answers every
 * binding request with a success response signed with its own password, and,
 * as ICE-lite (what the server is), nominates the sender's address as the
 * session's pair when the request carries USE-CANDIDATE. Anyone who can reach
 * a session's UDP port — its host candidate is in every answer — got
 * answers, and could nominate an address of their own for a session whose
 * client had not connected yet. werift does verify responses
 * (`StunProtocol.datagramReceived` re-parses them with the transaction's
 * key); requests reach the connection unverified, with their bytes.
 *
 * Each protocol's request event is wrapped when the connection takes it on:
 * a request that does not authenticate is dropped, unanswered (what a
 * stranger learns from an answer is that the port is a session's). A
 * password from before an ICE restart (werift's `userHistory`) still counts
 * for its own ufrag, as werift's answer uses it. Only werift's function is
 * wrapped; a werift that no longer subscribes there is left as it is. The
 * upstream change: verify USERNAME and MESSAGE-INTEGRITY in the request
 * handler, before answering.
 */
import { Connection, parseMessage } from 'werift';
import { guardCounts } from './guard-counts.js';

/** What a request event passes to its handlers: werift's parsed message, the sender, the datagram as received. */
type RequestArgs = [message: { getAttributeValue(name: 'USERNAME'): unknown }, addr: unknown, data: unknown];

interface RequestEvent {
  execute: (...args: RequestArgs) => unknown;
}

interface IceConnectionInternals {
  localUsername: string;
  localPassword: string;
  /** Passwords by the local ufrag they went with (werift keeps them across ICE restarts). */
  userHistory?: Record<string, string>;
  ensureProtocol(protocol: { onRequestReceived?: RequestEvent }): unknown;
}

const proto = Connection.prototype as unknown as IceConnectionInternals;

/** werift's own function, as loaded. */
export const weriftEnsureProtocol = proto.ensureProtocol;

/** Whether werift's function is the one that handles requests through the protocol's event. */
export const authenticatesWeriftRequests = typeof weriftEnsureProtocol === 'function' && /onRequestReceived\.subscribe/.test(String(weriftEnsureProtocol));

const GUARDED = Symbol('earshot.stunRequestsAuthenticated');

/**
 * Whether `data`, a STUN request `message` parsed from it, authenticates for
 * `connection`: USERNAME `<local ufrag>:<remote ufrag>`, and MESSAGE-INTEGRITY
 * that verifies with the password that went with that local ufrag.
 */
export function authenticRequest(connection: Pick<IceConnectionInternals, 'localUsername' | 'localPassword' | 'userHistory'>, message: RequestArgs[0], data: unknown): boolean {
  if (!Buffer.isBuffer(data)) return false;
  const username = message.getAttributeValue('USERNAME');
  if (typeof username !== 'string') return false;
  const colon = username.indexOf(':');
  if (colon <= 0) return false;
  const local = username.slice(0, colon);
  const password = local === connection.localUsername ? connection.localPassword : Object.hasOwn(connection.userHistory ?? {}, local) ? connection.userHistory![local] : undefined;
  if (typeof password !== 'string' || password === '') return false;
  // werift's own parser, given a key, returns nothing unless MESSAGE-INTEGRITY is present and verifies.
  return parseMessage(data, Buffer.from(password, 'utf8')) !== undefined;
}

if (authenticatesWeriftRequests) {
  proto.ensureProtocol = function ensureProtocol(this: IceConnectionInternals, protocol) {
    const event = protocol.onRequestReceived;
    if (event && typeof event.execute === 'function' && !(GUARDED in event)) {
      const execute = event.execute;
      event.execute = (message, addr, data) => {
        if (authenticRequest(this, message, data)) return execute(message, addr, data);
        guardCounts.stunUnauthenticated++;
        return undefined;
      };
      Object.defineProperty(event, GUARDED, { value: true });
    }
    return weriftEnsureProtocol.call(this, protocol);
  };
}
