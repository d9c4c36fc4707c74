/**
 * ICE settings for werift peers, shared by the server and `earshot send`.
 *
 * Three werift defaults are wrong for us and are overridden here:
 * - it asks `stun.l.google.com` for a server-reflexive candidate even with
 *   `iceServers: []`; a server must never reach out on its own, so STUN is off
 *   unless servers are configured explicitly;
 * - it skips loopback interfaces and, when asked for them, still announces every
 *   other interface; with `hostAddresses` we announce exactly the given ones;
 * - its ICE credentials are hex, 4 and 22 characters: 16 and 88 bits, where
 *   RFC 8839 §5.4 asks for at least 24 and 128 (`strengthenIceCredentials`).
 *
 * An announced address need not be one of this machine's: behind 1:1 NAT (a
 * cloud VM's public IP) it is the public address, and the media sockets are
 * bound to a local address (the first local one given, else all interfaces)
 * while the candidates carry the public one. Binding the public address
 * itself fails (EADDRNOTAVAIL), and werift reports that as an unhandled
 * socket error that ends the process.
 */
import { randomBytes } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { isIP, isIPv4 } from 'node:net';
import type { RTCPeerConnection, RTCIceServer } from 'werift';
import { errors } from '../errors.js';

export interface IceOptions {
  /**
   * Host addresses to announce as candidates, e.g. `['127.0.0.1']`, or the
   * server's public address behind 1:1 NAT (it need not be on an interface).
   * Empty or undefined: every non-loopback interface.
   */
  hostAddresses?: string[];
  /** UDP port range `[min, max]` for media sockets (min < max). Default: any free port. */
  portRange?: [number, number];
  /**
   * STUN/TURN servers this agent gathers with. Default none: no request leaves
   * the machine unless you list one. Only full-ICE connections (the user's own
   * signaling) use them; ICE-lite WHIP sessions never do.
   */
  iceServers?: RTCIceServer[];
}

/** Partial werift `RTCPeerConnection` config for the given ICE options. */
export function iceConfig(options: IceOptions = {}) {
  const hosts = options.hostAddresses?.filter((a) => a.length > 0) ?? [];
  for (const host of hosts) {
    if (!isIP(host)) throw new TypeError(`ICE host address must be an IP address, got "${host}"`);
  }
  if (options.portRange) {
    const [min, max] = options.portRange;
    if (!(Number.isInteger(min) && Number.isInteger(max) && min > 0 && max <= 65535 && min < max)) {
      throw new RangeError(`ICE port range must be two ports with min < max, got [${min}, ${max}]`);
    }
  }
  const explicit = hosts.length > 0;
  // The socket is bound to a local address; addresses that are not local (NAT) are announced only.
  const local = localAddresses();
  const v4 = hosts.find((h) => isIP(h) === 4 && local.has(h));
  return {
    iceServers: options.iceServers ?? [],
    icePortRange: options.portRange,
    // With explicit hosts, turn interface discovery off and add exactly those.
    iceUseIpv4: !explicit,
    iceUseIpv6: !explicit,
    iceAdditionalHostAddresses: explicit ? hosts : undefined,
    iceInterfaceAddresses: explicit && v4 ? { udp4: v4 } : undefined,
  };
}

/**
 * Turns werift's implicit STUN lookup off for a peer that has no STUN server
 * configured. Call after the transceivers exist and before setLocalDescription.
 */
export function disableImplicitStun(pc: RTCPeerConnection, iceServers: RTCIceServer[] | undefined): void {
  const hasStun = (iceServers ?? []).some((s) => [s.urls].flat().some((u) => /^stuns?:/i.test(u)));
  if (hasStun) return;
  for (const transport of pc.iceTransports) {
    (transport.connection as { stunServer?: unknown }).stunServer = undefined;
  }
}

/** werift's ICE connection, as far as its credentials go. */
interface IceCredentials {
  localUsername: string;
  localPassword: string;
  /** Earlier credentials still accepted in connectivity checks (an ICE restart keeps the old ones). */
  userHistory?: Record<string, string>;
  restart(): Promise<void>;
}

/** Per ICE connection: the ufrag given it here; another one there is werift's own (a restart made it). */
const given = new WeakMap<object, string>();

/**
 * Gives every ICE transport of `pc` credentials with the randomness RFC 8839
 * §5.4 asks for (ufrag at least 24 bits, password at least 128): 8 and 24
 * characters of its ice-char alphabet (ALPHA / DIGIT / "+" / "/", 6 bits
 * each), 48 and 144 bits, the lengths browsers use. Transports that shared a
 * pair of werift's share the new one, as werift has them. Call once the
 * transports exist and before the description that carries them is made;
 * later calls leave given credentials alone. An ICE restart (werift makes new
 * ones of its own, local or asked by the remote side) gets new ones at once.
 */
export function strengthenIceCredentials(pc: RTCPeerConnection): void {
  const replaced = new Map<string, { ufrag: string; pwd: string }>();
  for (const transport of pc.iceTransports) strengthen(transport.connection as unknown as IceCredentials, replaced);
}

function strengthen(connection: IceCredentials, replaced = new Map<string, { ufrag: string; pwd: string }>()): void {
  if (!given.has(connection)) {
    const restart = connection.restart.bind(connection);
    connection.restart = () => {
      const restarted = restart();
      strengthen(connection);
      return restarted;
    };
  }
  const weak = connection.localUsername;
  if (given.get(connection) === weak) return;
  const pair = replaced.get(weak) ?? { ufrag: iceChars(8), pwd: iceChars(24) };
  replaced.set(weak, pair);
  connection.localUsername = pair.ufrag;
  connection.localPassword = pair.pwd;
  given.set(connection, pair.ufrag);
  // A restart files its new (weak) pair among those checks may still use: they were never sent.
  if (connection.userHistory && Object.hasOwn(connection.userHistory, weak)) delete connection.userHistory[weak];
}

/** `n` random ice-chars (n a multiple of 4): base64 is exactly that alphabet, and needs no padding then. */
function iceChars(n: number): string {
  return randomBytes((n / 4) * 3).toString('base64');
}

/** This machine's interface addresses (loopback included). */
function localAddresses(): Set<string> {
  return new Set(Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address)));
}

/**
 * True for `localhost`, ::1 and an IPv4 address in 127.0.0.0/8. A name that
 * merely starts with "127." (`127.attacker.example`) is not: a page can point
 * such a name at this machine (DNS rebinding) and must not pass for loopback.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || (isIPv4(h) && h.startsWith('127.'));
}

/**
 * Throws `EARSHOT_NO_MEDIA_PORT` (503) for a local description without a
 * candidate: werift answers so when no UDP socket could be opened (every
 * port of the range is held), and a client could never connect with it.
 */
export function requireCandidates(localSdp: string): void {
  if (!/^a=candidate:/m.test(localSdp)) throw errors.NO_MEDIA_PORT();
}

/** Resolves when the peer has gathered all its candidates (non-trickle offer/answer). */
export function iceGatheringComplete(pc: RTCPeerConnection, timeoutMs = 5000): Promise<void> {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.unSubscribe();
      reject(new Error(`ICE gathering did not complete within ${timeoutMs} ms`));
    }, timeoutMs);
    const sub = pc.iceGatheringStateChange.subscribe((state) => {
      if (state !== 'complete') return;
      clearTimeout(timer);
      sub.unSubscribe();
      resolve();
    });
  });
}
