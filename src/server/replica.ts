/**
 * HTTP side of running as one replica over a shared store (STORE_URL):
 * - `x-min-store-seq: N` on a collection request waits until this replica has
 *   applied change N (read-your-writes across replicas), 504 at the deadline;
 * - collection responses say `x-store-stale: true` while the store is
 *   unreachable (answers come from memory and may miss newer writes);
 * - `/ready` is 503 until the replica has loaded and caught up at start;
 * - `/metrics` shows the applied and head sequence numbers and the lag.
 * Writes set `x-store-seq` themselves (routes/collections.ts), from the receipt the store fills.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Gauge } from 'prom-client';
import type { ReplicaStatus } from '../pgstore/pg-store.js';
import { ApiError } from './errors/catalogue.js';
import { requestTimeoutMs } from './knobs.js';
import type { Metrics } from './metrics.js';

export interface Replica {
  status(): ReplicaStatus;
  /** Resolves true once change `seq` is applied here, false at `deadline` (ms since epoch). */
  waitForSeq(seq: number, deadline: number): Promise<boolean>;
}

export const MIN_SEQ_HEADER = 'x-min-store-seq';
export const SEQ_HEADER = 'x-store-seq';
export const STALE_HEADER = 'x-store-stale';

/** Routes whose answers come from the store (the collections plugin marks its routes). */
function isStoreRoute(request: FastifyRequest): boolean {
  return request.routeOptions.config.store === true;
}

export function replicaHooks(app: FastifyInstance, replica: Replica, metrics: Metrics, defaultTimeoutMs: number): void {
  app.addHook('preHandler', async (request) => {
    if (request.routeOptions.config.readiness) {
      const s = replica.status();
      if (!s.caughtUp) throw new ApiError('REPLICA_LOADING', s.applied, s.head);
      return;
    }
    const raw = request.headers[MIN_SEQ_HEADER];
    if (raw === undefined || !isStoreRoute(request)) return;
    const seq = typeof raw === 'string' && /^\d{1,15}$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
    if (!Number.isSafeInteger(seq)) throw new ApiError('INVALID_MIN_STORE_SEQ');
    if (!(await replica.waitForSeq(seq, Date.now() + requestTimeoutMs(request, defaultTimeoutMs)))) {
      throw new ApiError('STORE_SEQ_NOT_REACHED', replica.status().applied, seq);
    }
  });

  app.addHook('onSend', async (request, reply, payload) => {
    if (isStoreRoute(request) && !replica.status().connected) reply.header(STALE_HEADER, 'true');
    return payload;
  });

  const r = metrics.registry;
  new Gauge({
    name: 'embed_store_applied_seq',
    help: 'Highest store change sequence number applied by this replica',
    registers: [r],
    collect() {
      this.set(replica.status().applied);
    },
  });
  new Gauge({
    name: 'embed_store_head_seq',
    help: 'Highest store change sequence number this replica has seen committed',
    registers: [r],
    collect() {
      this.set(replica.status().head);
    },
  });
  new Gauge({
    name: 'embed_store_lag_changes',
    help: 'Changes committed but not yet applied by this replica (head − applied)',
    registers: [r],
    collect() {
      const s = replica.status();
      this.set(Math.max(0, s.head - s.applied));
    },
  });
  new Gauge({
    name: 'embed_store_lag_seconds',
    help: 'Seconds since this replica first saw a change it has not applied yet (0 when current)',
    registers: [r],
    collect() {
      this.set(replica.status().lagSeconds);
    },
  });
  new Gauge({
    name: 'embed_store_connected',
    help: '1 while the store answers this replica, 0 while reads are served stale from memory',
    registers: [r],
    collect() {
      this.set(replica.status().connected ? 1 : 0);
    },
  });
}
