/**
 * The logger the core writes to. The core names pino's own types, not
 * fastify's, so it stays independent of HTTP: fastify's `app.log` and a
 * `pino()` logger both fit, and so does anything that logs the same way.
 */
import type { BaseLogger, Bindings } from 'pino';

export interface CoreLogger extends Pick<BaseLogger, 'level' | 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'> {
  /** A logger whose lines carry `bindings` (room, peer, session). */
  child(bindings: Bindings): CoreLogger;
}
