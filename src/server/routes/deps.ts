/** What every route plugin is given: the engine it serves, the request limits, and the metrics. */
import type { Engine } from '../../runtime/engine.js';
import type { ServerLimits } from '../app.js';
import type { Metrics } from '../metrics.js';

export interface RouteDeps {
  engine: Engine;
  limits: ServerLimits;
  metrics: Metrics;
}
