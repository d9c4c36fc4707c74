/**
 * The live dashboard at `/`: a static page (no build step, no framework) that
 * reads `GET /events`, drives the recording API and publishes the visitor's
 * microphone over WHIP. Its files live in `src/server/dashboard/`, which ships
 * with the package, so the same path works from the sources and from `dist/`.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { packageRoot } from '../../package-root.js';

/** Where the page's files are, in the sources and in the installed package alike. */
export function dashboardDir(): string {
  return join(packageRoot(), 'src', 'server', 'dashboard');
}

/** The page's routes (`/` and one per file): public, since the page holds no data and asks for the admin token. */
export function dashboardRoutes(): string[] {
  return ['/', ...readdirSync(dashboardDir()).map((f) => `/${f}`)];
}

/**
 * The page talks only to its own origin; a peer or room name shown on it can
 * never run as script (the page also only ever sets `textContent`).
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "media-src 'self' blob:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function registerDashboardRoutes(app: FastifyInstance): void {
  void app.register(fastifyStatic, {
    root: dashboardDir(),
    prefix: '/',
    // One route per file (and `/` for index.html) instead of a `/*` catch-all,
    // so unknown paths still reach the problem+json 404 handler.
    wildcard: false,
    decorateReply: false,
    cacheControl: false,
    setHeaders(res, path) {
      // The page is a few KiB: always fresh beats stale assets after an upgrade.
      res.setHeader('Cache-Control', 'no-cache');
      if (path.endsWith('.html')) res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
    },
  });
}
