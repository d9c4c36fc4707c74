/**
 * `If-Match` on a WHIP or WHEP session URL (RFC 9110 §13.1.1): each answer
 * gave the session a strong entity tag (`ETag: "<id>"`), and CORS allows the
 * header, so a DELETE that names another one must change nothing (412).
 * `*` matches any session that exists; a weak tag never matches (strong
 * comparison). Only for a request that would otherwise succeed: the caller
 * checks the session exists first (a 404 stays a 404, §13.2.1).
 */
import type { FastifyRequest } from 'fastify';
import { errors } from '../errors.js';

export function checkIfMatch(req: FastifyRequest, etag: string): void {
  const header = req.headers['if-match'];
  if (header === undefined) return;
  const value = Array.isArray(header) ? header.join(', ') : header;
  if (value.trim() === '*') return;
  // Entity tags are quoted (commas may appear inside the quotes); a weak one is W/"…".
  const tags = value.match(/(?:W\/)?"[^"]*"/g) ?? [];
  if (tags.some((tag) => tag === etag)) return;
  throw errors.PRECONDITION_FAILED(value, etag);
}
