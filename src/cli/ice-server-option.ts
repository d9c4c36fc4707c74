/**
 * The `--ice-server URL[,username,credential]` option of `earshot serve` (the
 * servers advertised to clients) and `earshot send` (the servers it gathers with).
 */
import type { RTCIceServer } from 'werift';
import { parseIceServerSpec } from '../rtc/ice-servers.js';
import { invalidArgument } from './invalid-argument.js';

/**
 * Repeatable `URL[,username,credential]`; one value (an environment
 * variable) may hold several, separated by whitespace. Credentials therefore
 * cannot contain whitespace here (`iceServers` in code takes any).
 */
export function iceServers(value: string, previous: RTCIceServer[] | undefined): RTCIceServer[] {
  const parsed = value.split(/\s+/).filter(Boolean).map((spec) => {
    try {
      return parseIceServerSpec(spec);
    } catch (e) {
      throw invalidArgument(e);
    }
  });
  return [...(previous ?? []), ...parsed];
}
