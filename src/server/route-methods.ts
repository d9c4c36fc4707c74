/**
 * Which methods a path has, for a 405 with `Allow` (RFC 9110 §15.5.6) where
 * a known resource is asked with a method it does not take (`POST /stats`,
 * `HEAD /whip/room/peer`, `PROPFIND …`), instead of a 404 that says the path
 * does not exist. Fastify's router is not public, so the routes are mirrored
 * into a find-my-way router (the one Fastify uses) as they are added; the
 * not-found handler asks it. Routes that only refuse their method themselves (WHIP's
 * 405s, `notAllowed`; the 501 of `PATCH` on a session) are left out, so that `Allow`
 * lists what the path does take,
 * and so are catch-alls that only answer 404 (`OPTIONS /whip/*`): a path
 * they match is no resource, and a POST there is a 404, not a 405.
 */
import FindMyWay, { type HTTPMethod } from 'find-my-way';
import type { FastifyInstance } from 'fastify';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route only refuses its method (405, or 501 for PATCH on a session; see route-methods.ts): not a method the path takes. */
    methodNotAllowed?: boolean;
    /** The route only answers 404 (a catch-all): the paths it matches are no resource. */
    notAResource?: boolean;
  }
}

const METHODS: readonly HTTPMethod[] = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];

export class RouteMethods {
  readonly #router: ReturnType<typeof FindMyWay>;

  /**
   * Mirrors every route added to `app` from now on. `maxParamLength`: the app's router's, so that
   * a path it matches is found here too (find-my-way's default is 100).
   */
  constructor(app: FastifyInstance, options: { maxParamLength: number }) {
    this.#router = FindMyWay({ maxParamLength: options.maxParamLength });
    app.addHook('onRoute', (route) => {
      if (route.config?.methodNotAllowed || route.config?.notAResource) return;
      for (const method of Array.isArray(route.method) ? route.method : [route.method]) {
        try {
          this.#router.on(method.toUpperCase() as HTTPMethod, route.url, () => undefined, { url: route.url });
        } catch {
          // the same method and path twice (Fastify refuses that itself), or one find-my-way does not take
        }
      }
    });
  }

  /**
   * The methods `path` (no query) has, in a fixed order; empty for a path no route has.
   * Only the methods of the resource the path names: `/whip/sessions/x` is a session, so
   * the POST of `/whip/:room/:peer` (which the path also matches) is not one of them.
   */
  allowed(path: string): HTTPMethod[] {
    const matches = METHODS.flatMap((method) => {
      const found = this.#router.find(method, path);
      return found ? [{ method, url: (found.store as { url: string }).url }] : [];
    });
    if (matches.length === 0) return [];
    // The resource is the most specific pattern matched: fewest parameters, then the most literal text.
    const rank = (url: string) => [(url.match(/[:*]/g) ?? []).length, -url.replace(/:[^/]+/g, '').length];
    const resource = matches.map((m) => m.url).sort((a, b) => rank(a)[0] - rank(b)[0] || rank(a)[1] - rank(b)[1])[0];
    return matches.filter((m) => m.url === resource).map((m) => m.method);
  }
}
