/**
 * ICE servers advertised to WHIP clients as `Link` header fields (RFC 9725
 * §4.6, RFC 8288), one field per URL, as in the RFC's example:
 *
 *     Link: <stun:stun.example.net>; rel="ice-server"
 *     Link: <turn:turn.example.net?transport=udp>; rel="ice-server"; username="user"; credential="myPassword"; credential-type="password"
 *
 * The attribute order is the RFC's: some clients (MediaMTX's page among them)
 * match it literally. Values are quoted-strings (RFC 9110 §5.6.4) with `\` and
 * `"` escaped; `checkIceServers` already refused anything but printable ASCII.
 */
import type { IceServerUrl } from '../rtc/ice-servers.js';

export function iceServerLink(server: IceServerUrl): string {
  const link = `<${server.url}>; rel="ice-server"`;
  if (server.username === undefined || server.credential === undefined) return link;
  return `${link}; username=${quoted(server.username)}; credential=${quoted(server.credential)}; credential-type="password"`;
}

/**
 * The Link field values for `servers`. Without `withCredentials` the TURN
 * servers are left out (they are useless without their credentials, and
 * their credentials must only reach a client allowed to publish).
 */
export function iceServerLinks(servers: readonly IceServerUrl[], withCredentials: boolean): string[] {
  return servers.filter((s) => withCredentials || s.username === undefined).map(iceServerLink);
}

function quoted(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}
