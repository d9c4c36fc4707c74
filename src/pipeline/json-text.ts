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

/** A key given again in the same object. */
export interface RepeatedKey {
  /** JSON Pointer (RFC 6901) of the key. */
  path: string;
  /** `is given twice in its object (lines 4 and 9); JSON keeps only the last, …` */
  message: string;
  /** Where (`line:column`, from 1) it is given first and again: `lines 4 and 9`, or `line 5, columns 9 and 21`. */
  where: string;
}

/**
 * The value and the keys given twice in it, or why there is none: `notJson` reads after "is"
 * (`not valid JSON: … (line 3, column 5)`, or nested too deeply to read).
 */
export type JsonText = { value: unknown; repeatedKeys: RepeatedKey[] } | { notJson: string };

/** What a key given twice costs, and what to do. */
export const KEEPS_LAST = 'JSON keeps only the last, so the first would be lost: rename or remove one';

/**
 * Parses JSON text. A leading byte order mark, which some editors write at the start of UTF-8
 * files (Windows Notepad did by default), is not part of the JSON (RFC 8259 §8.1 lets a parser
 * ignore it). `reviver` is `JSON.parse`'s; an error it throws other than a `SyntaxError` is thrown.
 */
export function parseJsonText(text: string, reviver?: (this: unknown, key: string, value: unknown) => unknown): JsonText {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let value: unknown;
  try {
    value = JSON.parse(text, reviver);
  } catch (e) {
    // A reviver (and both parsers) recurse: thousands of nested arrays overflow the stack.
    if (e instanceof RangeError) return { notJson: TOO_DEEP };
    if (!(e instanceof SyntaxError)) throw e;
    return { notJson: syntaxMessage(text, e) };
  }
  try {
    return { value, repeatedKeys: repeatedKeys(text) };
  } catch (e) {
    if (e instanceof RangeError) return { notJson: TOO_DEEP };
    throw e;
  }
}

/** Reads after "is": the text is … */
const TOO_DEEP = 'nested too deeply to read (thousands of arrays or objects inside one another)';

function syntaxMessage(text: string, e: Error): string {
  // V8 quotes the text itself in some messages (`Unexpected token 'h', "hello\nworld" is not
  // valid JSON`): the quote is left out, so that a problem stays one line.
  const v8 = e.message
    .replace(/, (?:\.\.\.)?".*"(?:\.\.\.)? is not valid JSON$/s, '')
    .replace(/ (?:in JSON )?at position \d+.*$/s, '')
    .replace(/\s+/g, ' ');
  let at: { offset: number; line: number; column: number } | undefined;
  try {
    visit(
      text,
      { onError: (_code, offset, _length, line, column) => void (at ??= { offset, line: line + 1, column: column + 1 }) },
      { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false },
    );
  } catch {
    // Too deep for the visitor: V8's message alone.
  }
  if (!at) return `not valid JSON: ${v8}`;
  // The mistake people make most (JavaScript and JSON5 allow it): `[1, 2,]`, `{"a": 1,}`.
  const trailingComma = /^[\]}]/.test(text.slice(at.offset)) && /,\s*$/.test(text.slice(0, at.offset));
  return `not valid JSON: ${v8} (line ${at.line}, column ${at.column})${trailingComma ? '; JSON allows no comma after the last item of an array or object' : ''}`;
}

/** Each key given again in the same object, at its path. */
function repeatedKeys(text: string): RepeatedKey[] {
  const objects: Array<Map<string, { line: number; column: number }>> = [];
  const found: RepeatedKey[] = [];
  visit(text, {
    onObjectBegin: () => void objects.push(new Map()),
    onObjectEnd: () => void objects.pop(),
    onObjectProperty: (key, _offset, _length, line0, column0, pathOf) => {
      const keys = objects[objects.length - 1];
      const first = keys.get(key);
      const here = { line: line0 + 1, column: column0 + 1 };
      if (first === undefined) return void keys.set(key, here);
      // A minified document is one line: the columns tell the two apart.
      const where = first.line === here.line ? `line ${here.line}, columns ${first.column} and ${here.column}` : `lines ${first.line} and ${here.line}`;
      found.push({ path: pointer([...pathOf(), key]), message: `is given twice in its object (${where}); ${KEEPS_LAST}`, where });
    },
  });
  return found;
}

/** A JSON Pointer (RFC 6901) from a path of keys and indexes. */
function pointer(path: Array<string | number>): string {
  return path.map((p) => `/${String(p).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}
