/**
 * JSON text as people write it (pipeline files, room bindings, control API bodies): the value is
 * JSON.parse's own; a syntax error says its line and column on every Node version; a key given
 * twice in one object, which JSON.parse resolves silently by keeping the last, is a problem at
 * its path, beside the value.
 */
import { describe, expect, it } from 'vitest';
import { parseJsonText } from '../../src/pipeline/json-text.js';

describe('parseJsonText', () => {
  it('gives JSON.parse\'s value and no problem for valid text, past a byte order mark', () => {
    for (const text of ['{"a": [1, {"b": null}], "c": "x"}', '[]', '3', '"s"', 'null', '{"a": {"a": {"a": 1}}}', '[{"k": 1}, {"k": 2}]']) {
      expect(parseJsonText(text), text).toEqual({ value: JSON.parse(text), repeatedKeys: [] });
    }
    expect(parseJsonText('\uFEFF{"a": 1}')).toEqual({ value: { a: 1 }, repeatedKeys: [] });
  });

  it('says where a syntax error is, with no value, and names the trailing comma people write', () => {
    const cases: Array<[string, RegExp]> = [
      ['{\n  "a": [1, 2, ],\n  "b": 1\n}', /^not valid JSON: .* \(line 2, column 15\); JSON allows no comma after the last item of an array or object$/],
      ['{\n  "name": "x",\n}\n', /^not valid JSON: .* \(line 3, column 1\); JSON allows no comma after the last item of an array or object$/],
      ['{"a": 1 "b": 2}', /^not valid JSON: .* \(line 1, column 9\)$/],
      ['{"a": "unterminated', /^not valid JSON: .* \(line 1, column 7\)$/],
      ['{"a": 1} x', /^not valid JSON: .* \(line 1, column 10\)$/],
      ['', /^not valid JSON: .* \(line 1, column 1\)$/],
      // V8 quotes the text in this message, newline and all: the problem stays one line.
      ['hello\nworld\n', /^not valid JSON: Unexpected token 'h' \(line 1, column 1\)$/],
    ];
    for (const [text, message] of cases) expect(parseJsonText(text), text).toEqual({ notJson: expect.stringMatching(message) });
  });

  it('says a document nested too deeply to read is so, rather than overflowing the stack (a reviver and both parsers recurse)', () => {
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
    expect(parseJsonText(deep)).toEqual({ notJson: 'nested too deeply to read (thousands of arrays or objects inside one another)' });
    expect(parseJsonText(deep, (_k, v) => v)).toEqual({ notJson: 'nested too deeply to read (thousands of arrays or objects inside one another)' });
  });

  it('finds every key given twice, nested or in arrays, at its path (RFC 6901 escapes) and lines, and still gives the value', () => {
    const text = '{\n  "b": {"x": 1,\n    "x": 2},\n  "list": [{"k": 1, "k": 2}],\n  "a/b~c": 1, "a/b~c": 2,\n  "b": 3\n}';
    const parsed = parseJsonText(text);
    if ('notJson' in parsed) throw new Error(parsed.notJson);
    expect(parsed.value).toEqual(JSON.parse(text));
    // On one line (a minified body), the columns tell the two apart.
    expect(parsed.repeatedKeys.map(({ path, where }) => ({ path, where }))).toEqual([
      { path: '/b/x', where: 'lines 2 and 3' },
      { path: '/list/0/k', where: 'line 4, columns 13 and 21' },
      { path: '/a~1b~0c', where: 'line 5, columns 3 and 15' },
      { path: '/b', where: 'lines 2 and 6' },
    ]);
    expect(parsed.repeatedKeys[0].message).toBe('is given twice in its object (lines 2 and 3); JSON keeps only the last, so the first would be lost: rename or remove one');
  });

  it('passes a reviver\'s own refusal through as it threw it', () => {
    const refusal = new Error('no');
    expect(() => parseJsonText('{"a": 1}', (key, value) => {
      if (key === 'a') throw refusal;
      return value;
    })).toThrow(refusal);
  });
});
