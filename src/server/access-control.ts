/**
 * Default-deny: every route needs the admin role unless it says otherwise
 * through its `config.access`. A route added later is protected without anyone
 * remembering to protect it.
 *
 * - `public`: `/health`, the dashboard's static files (a page with no data; it
 *   asks for the admin token), CORS/WHIP OPTIONS, unknown routes (404);
 * - `publish`: WHIP POST/DELETE/PATCH;
 * - `metrics`: admin unless `metricsPublic`;
 * - `admin-or-signed`: the route checks a signed link itself, else admin.
 */
import type { FastifyInstance } from 'fastify';
import type { Access } from './access.js';

export type RouteAccess = 'public' | 'publish' | 'admin' | 'metrics' | 'admin-or-signed';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route (default admin); see server/access-control.ts. */
    access?: RouteAccess;
  }
}

export function installAccessControl(app: FastifyInstance, access: Access, options: { metricsPublic: boolean; publicRoutes: ReadonlySet<string> }): void {
  const requireAdmin = access.require('admin');
  const requirePublish = access.require('publish');
  app.addHook('onRequest', async (req, reply) => {
    const route = req.routeOptions;
    // No route matched: the 404 handler answers, revealing nothing.
    if (route.url === undefined) return;
    let level: RouteAccess = route.config.access ?? 'admin';
    if (req.method === 'OPTIONS' || options.publicRoutes.has(route.url)) level = 'public';
    switch (level) {
      case 'public':
      case 'admin-or-signed':
        return;
      case 'publish':
        return requirePublish(req, reply);
      case 'metrics':
        if (options.metricsPublic) return;
        return requireAdmin(req, reply);
      case 'admin':
        return requireAdmin(req, reply);
    }
  });
}
