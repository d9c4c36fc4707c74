/**
 * Bounds on client text echoed back in error messages and log lines. An error
 * that quotes what the client sent must not grow with it: a 43 KB offer once
 * produced a 40 KB problem `detail` and a 40 KB log line.
 */

/** Longest fragment of client input one message quotes. */
export const MAX_QUOTED_CHARS = 200;

/** `text` cut to `max` characters, saying how much was left out. */
export function clip(text: string, max: number = MAX_QUOTED_CHARS): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max)}… (${text.length - max} more characters)`;
}

/** `text` in double quotes, cut to `max` characters. */
export function quote(text: string, max: number = MAX_QUOTED_CHARS): string {
  return `"${clip(text, max)}"`;
}

/** The first `max` items joined by `separator`, then "… and N more" for the rest. */
export function listWithMore(items: readonly string[], max: number, separator = ', '): string {
  if (items.length <= max) return items.join(separator);
  return `${items.slice(0, max).join(separator)}${separator}… and ${items.length - max} more`;
}
