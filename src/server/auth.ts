/**
 * Optional bearer API keys. Keys are compared as SHA-256 digests with a constant-time comparison
 * against every configured key, so neither timing nor the loop reveals which key nearly matched.
 * Keys are never logged (the logger redacts the authorization header).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { ApiError } from './errors/catalogue.js';

const digest = (key: string): Buffer => createHash('sha256').update(key).digest();

/** Keys from a file (one per line, `#` comments) and from a comma-separated list. */
export function loadApiKeys(list: string | undefined, file: string | undefined): string[] {
  const keys: string[] = [];
  if (list) keys.push(...list.split(','));
  if (file)
    keys.push(
      ...readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => !l.trimStart().startsWith('#')),
    );
  return [...new Set(keys.map((k) => k.trim()).filter(Boolean))];
}

/**
 * Requires a key on every route not marked `config.public`. Routes mark themselves (health,
 * readiness, metrics); `publicRoutes`, when given, replaces those marks by route pattern, decided
 * once as each route is registered.
 */
export function registerAuth(app: FastifyInstance, keys: readonly string[], publicRoutes?: readonly string[]): void {
  if (publicRoutes) {
    // A listed path is public with everything under it (`/docs` covers `/docs/json`, `/docs/static/*`).
    const isPublic = (url: string): boolean => publicRoutes.some((p) => url === p || url.startsWith(p.endsWith('/') ? p : `${p}/`));
    app.addHook('onRoute', (route) => {
      route.config = { ...route.config, public: isPublic(route.url) };
    });
  }
  if (keys.length === 0) return;
  const digests = keys.map(digest);
  app.addHook('onRequest', async (request) => {
    if (request.routeOptions.config.public) return;
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match) throw new ApiError('API_KEY_MISSING');
    const given = digest(match[1]!.trim());
    let ok = false;
    for (const d of digests) ok = timingSafeEqual(d, given) || ok;
    if (!ok) throw new ApiError('API_KEY_INVALID');
  });
}
