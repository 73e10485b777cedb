/** What every route plugin is registered with: `app.register(plugin, deps)`. */
import type { Embedder } from '../../runtime/embedder.js';
import type { ServerLimits } from '../app.js';
import type { Metrics } from '../metrics.js';

export interface RouteDeps {
  embedder: Embedder;
  limits: ServerLimits;
  metrics: Metrics;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Reachable without an API key (src/server/auth.ts reads it). */
    public?: boolean;
    /** false: never shed under event-loop pressure (liveness must answer on a busy instance). */
    shed?: boolean;
  }
}
