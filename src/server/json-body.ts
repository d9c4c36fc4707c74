/**
 * The JSON body parser of the control API: `application/json` and any
 * `application/…+json` type (which the body-type check lets through, and
 * fastify had no parser for: 415 "got none"), with errors that say what is
 * wrong. Fastify's own said "Body is not valid JSON" for a syntax error and
 * for a refused key alike.
 *
 * A key given twice in one object is refused (JSON.parse would keep the last
 * silently), and a syntax error says its line and column.
 *
 * Keys that would reach an object's prototype when a handler copies the
 * document (`__proto__`, and `constructor` holding `prototype`) are refused,
 * as fastify refuses them (prototype poisoning).
 */
import type { FastifyInstance } from 'fastify';
import { errors } from '../errors.js';
import { KEEPS_LAST, parseJsonText, type JsonText } from '../pipeline/json-text.js';

/** Content types parsed as JSON. */
const JSON_TYPES = /^application\/(?:[a-z0-9!#$&^_.+-]+\+)?json$/i;

export function installJsonBodyParser(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(JSON_TYPES, { parseAs: 'string' }, (_req, body, done) => {
    try {
      // No body at all is no body, whatever the type says (a client that always sends
      // Content-Type: application/json): the route decides whether it needs one.
      done(null, (body as string).trim() === '' ? undefined : parseJsonBody(body as string));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
}

/** Parses a request body as JSON; throws `EARSHOT_BODY_INVALID` saying why it cannot be. */
export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') throw errors.BODY_INVALID('The JSON body is empty.');
  let parsed: JsonText;
  try {
    parsed = parseJsonText(text, refuseProtoKeys);
  } catch (e) {
    if (e instanceof RefusedKey) throw errors.BODY_INVALID(`The JSON body has a "${e.key}" key, which is refused: it could change the prototype of the objects the server builds from it.`);
    throw errors.BODY_INVALID(`The JSON body could not be read: ${(e as Error).message.slice(0, 200)}`);
  }
  if ('notJson' in parsed) throw errors.BODY_INVALID(`The JSON body is ${parsed.notJson.slice(0, 300)}`);
  const [first, ...more] = parsed.repeatedKeys;
  if (!first) return parsed.value;
  // A key given twice: JSON.parse kept the last, and whatever the first said would be lost without a word.
  const others = more.length > 0 ? ` (and ${more.length} more key${more.length === 1 ? '' : 's'} given twice: ${more.slice(0, 5).map((p) => p.path).join(', ')})` : '';
  throw errors.BODY_INVALID(`The JSON body has the key ${first.path} twice (${first.where}); ${KEEPS_LAST}${others}.`);
}

class RefusedKey extends Error {
  constructor(readonly key: string) {
    super(key);
  }
}

function refuseProtoKeys(this: unknown, key: string, value: unknown): unknown {
  if (key === '__proto__') throw new RefusedKey('__proto__');
  if (key === 'constructor' && typeof value === 'object' && value !== null && Object.hasOwn(value, 'prototype')) throw new RefusedKey('constructor.prototype');
  return value;
}
