/**
 * A yes/no query parameter: given alone (`?histogram`) or as `true`/`1`, yes;
 * absent, or `false`/`0`, no. Anything else is `EARSHOT_BODY_INVALID` (400),
 * rather than read as yes because the parameter is there.
 */
import { errors } from '../errors.js';

export function queryFlag(value: unknown, name: string): boolean {
  if (value === undefined || value === '0' || value === 'false') return false;
  if (value === '' || value === '1' || value === 'true') return true;
  const shown = Array.isArray(value) ? 'more than one value' : `"${String(value).slice(0, 40)}"`;
  throw errors.BODY_INVALID(`${name} must be given alone (?${name}), or as true/false or 1/0; got ${shown}`);
}
