/**
 * `serve` is the default command, so commander hands it any word it does not
 * know: `earshot sned f.wav --url …` failed with "unknown option '--url'" and
 * `earshot validat x` with "too many arguments for 'serve'", neither of which
 * says the command was mistyped. `serve` takes no arguments, so a first word
 * that is not a command (nor an option) is always a mistyped command.
 */
import { nearest } from '../pipeline/validation/wording.js';

/**
 * What to say about `args` (the arguments after `earshot`), if their command
 * is not one of `commands`: `unknown command "sned" (did you mean "send"?)`.
 * `earshot help <word>` is checked the same way.
 */
export function unknownCommandMessage(args: readonly string[], commands: readonly string[]): string | undefined {
  const [first, second] = args;
  const word = first === 'help' ? second : first;
  // `help` is commander's own command (`earshot help`, `earshot help help`).
  if (word === undefined || word.startsWith('-') || word === 'help' || commands.includes(word)) return undefined;
  const hint = nearest(word, commands);
  return `unknown command "${word}"${hint ? ` (${hint})` : ''}; the commands are ${commands.join(', ')} (earshot --help)`;
}
