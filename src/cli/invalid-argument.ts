import { InvalidArgumentError } from 'commander';
import { isEarshotError } from '../errors.js';

/**
 * Commander's refusal of an option's value for an error earshot's own check
 * threw: its message, and its code as every other refusal of `serve` prints
 * it (`[EARSHOT_…]`), so that scripts that look for the code find it.
 */
export function invalidArgument(e: unknown, message = (e as Error).message): InvalidArgumentError {
  return new InvalidArgumentError(isEarshotError(e) ? `${message} [${e.code}]` : message);
}
