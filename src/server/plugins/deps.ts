/** What every route plugin is registered with: `app.register(plugin, deps)`. */
import type { Embedder, ModelSet } from '../../runtime/embedder.js';
import type { ServerLimits } from '../app.js';
import type { Metrics } from '../metrics.js';

export interface RouteDeps {
  /** Every served model; routes pick one by the request's `model` (model-routing.ts). */
  models: ModelSet;
  /** The default model. */
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
    /** Answered from the collection store: a replica waits for `x-min-store-seq` and marks stale answers (replica.ts). */
    store?: boolean;
    /** The readiness probe: a replica answers 503 until it has caught up with the store (replica.ts). */
    readiness?: boolean;
  }
}
