/**
 * JSON text as people write it: pipeline files and the control API's bodies.
 * `JSON.parse` reads the value; jsonc-parser (the parser of VS Code's JSON
 * support) says where a syntax error is, on every Node version (V8's message
 * gives a position only for some errors), and finds a key given twice in one
 * object, which `JSON.parse` resolves silently by keeping the last: a branch
 * copied and pasted under the same name, or an option written twice, would
 * otherwise drop configuration without a word (RFC 8259 §4: names SHOULD be
 * unique, and parsers disagree on what a repeated one means).
 */
import { visit } from 'jsonc-parser';

/** Why the text is not usable: a syntax error, or a key given twice. `path` is a JSON Pointer: `''` for the document. */
export interface JsonTextProblem {
  path: string;
  message: string;
  /** For a key given twice: the lines (from 1) where it is given first and again. */
  lines?: [number, number];
}

/**
 * Parses JSON text. A leading byte order mark, which some editors write at the start of UTF-8
 * files (Windows Notepad did by default), is not part of the JSON (RFC 8259 §8.1 lets a parser
 * ignore it). A syntax error is the one problem of a text without a value: `not valid JSON: …
 * (line 3, column 5)`. Each repeated key is a problem at its path, beside the value `JSON.parse`
 * made, so that a caller can report the value's own problems with them. `reviver` is
 * `JSON.parse`'s; an error it throws is thrown.
 */
export function parseJsonText(text: string, reviver?: (this: unknown, key: string, value: unknown) => unknown): { value?: unknown; problems: JsonTextProblem[] } {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let value: unknown;
  try {
    value = JSON.parse(text, reviver);
  } catch (e) {
    // What the reviver threw is its own refusal, not a syntax error.
    if (!(e instanceof SyntaxError)) throw e;
    return { problems: [{ path: '', message: syntaxMessage(text, e as Error) }] };
  }
  return { value, problems: repeatedKeys(text) };
}

function syntaxMessage(text: string, e: Error): string {
  // V8 quotes the text itself in some messages (`Unexpected token 'h', "hello\nworld" is not
  // valid JSON`): the quote is left out, so that a problem stays one line.
  const v8 = e.message
    .replace(/, (?:\.\.\.)?".*"(?:\.\.\.)? is not valid JSON$/s, '')
    .replace(/ (?:in JSON )?at position \d+.*$/s, '')
    .replace(/\s+/g, ' ');
  let at: { offset: number; line: number; column: number } | undefined;
  visit(
    text,
    { onError: (_code, offset, _length, line, column) => void (at ??= { offset, line: line + 1, column: column + 1 }) },
    { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false },
  );
  if (!at) return `not valid JSON: ${v8}`;
  // The mistake people make most (JavaScript and JSON5 allow it): `[1, 2,]`, `{"a": 1,}`.
  const trailingComma = /^[\]}]/.test(text.slice(at.offset)) && /,\s*$/.test(text.slice(0, at.offset));
  return `not valid JSON: ${v8} (line ${at.line}, column ${at.column})${trailingComma ? '; JSON allows no comma after the last item of an array or object' : ''}`;
}

/** What a key given twice costs, and what to do. */
export const KEEPS_LAST = 'JSON keeps only the last, so the first would be lost: rename or remove one';

/** Each key given again in the same object, as a problem at that key's path. */
function repeatedKeys(text: string): JsonTextProblem[] {
  const objects: Array<Map<string, number>> = [];
  const found: JsonTextProblem[] = [];
  visit(text, {
    onObjectBegin: () => void objects.push(new Map()),
    onObjectEnd: () => void objects.pop(),
    onObjectProperty: (key, _offset, _length, line, _column, pathOf) => {
      const keys = objects[objects.length - 1];
      const first = keys.get(key);
      if (first === undefined) return void keys.set(key, line + 1);
      found.push({
        path: pointer([...pathOf(), key]),
        message: `is given twice in its object (lines ${first} and ${line + 1}); ${KEEPS_LAST}`,
        lines: [first, line + 1],
      });
    },
  });
  return found;
}

/** A JSON Pointer (RFC 6901) from a path of keys and indexes. */
function pointer(path: Array<string | number>): string {
  return path.map((p) => `/${String(p).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}
