/**
 * Room and peer names: one rule wherever a stream is named (WHIP and WHEP
 * URLs, room pipelines, `createPeerConnection`), so that a name taken in one
 * place is valid in the others, in recording file names and in URLs.
 */
import { errors } from '../errors.js';

export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** `/whip/sessions/…` are the session resources: no room may take that name. */
const RESERVED_ROOMS = new Set(['sessions']);

/** `EARSHOT_NAME_INVALID` (400) unless `value` is a string that fits the rule. */
export function checkName(kind: 'room' | 'peer', value: unknown): asserts value is string {
  if (typeof value !== 'string' || !NAME_PATTERN.test(value) || (kind === 'room' && RESERVED_ROOMS.has(value))) {
    throw errors.NAME_INVALID(kind, String(value));
  }
}
