import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { StoreBackend, WriteReceipt } from '../index/backend.js';
import { ConflictError, NotFoundError, StorageError } from '../index/errors.js';
import { checkStorable } from '../index/state.js';
import type { CollectionInfo, CollectionSettings, Logger, SearchHit, SearchOptions, StoredDocument, UpsertResult } from '../index/types.js';
import { normalizeSettings, settingsEqual, type ValidDocument, validateDocuments, validateId, validateName } from '../index/validate.js';
import { asStoreError, StoreUnavailableError } from './errors.js';
import { CHANGES_CHANNEL, Follower } from './follower.js';
import { encodeVector, type ReplicaCollection } from './memory.js';
import { migrate } from './migrations.js';

/** What a replica knows about how current it is (the `/metrics` gauges and the stale header). */
export interface ReplicaStatus {
  applied: number;
  head: number;
  caughtUp: boolean;
  connected: boolean;
  lagSeconds: number;
}

export interface PgStoreOptions {
  /** `postgres://user:password@host:port/database` (libpq URL; `?options=-c search_path=…` picks a schema). */
  url: string;
  logger: Logger;
  /** Pool size for writes and catch-up reads. Default 8. */
  poolSize?: number;
  /** Follower poll interval. Default 1000 ms. */
  pollMs?: number;
  /** How long a write waits for its own change to become visible locally after commit. Default 10 s. */
  visibleWithinMs?: number;
}

/** Batches above this many documents go through COPY; smaller ones through one prepared INSERT. */
const COPY_THRESHOLD = 16;

const UPSERT_SQL = `
WITH written AS (
  INSERT INTO documents (collection, id, text, metadata, vector, seq, ord)
  SELECT $1, u.id, u.text, u.metadata, u.vector, $2, u.ord
  FROM %SOURCE%
  ON CONFLICT (collection, id) DO UPDATE
    SET text = EXCLUDED.text, metadata = EXCLUDED.metadata, vector = EXCLUDED.vector, seq = EXCLUDED.seq, ord = EXCLUDED.ord
  RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted)::int AS inserted, count(*)::int AS total FROM written`;

const UPSERT_ROWS_SQL = UPSERT_SQL.replace(
  '%SOURCE%',
  'unnest($3::text[], $4::text[], $5::json[], $6::bytea[]) WITH ORDINALITY AS u(id, text, metadata, vector, ord)',
);
const UPSERT_COPIED_SQL = UPSERT_SQL.replace('%SOURCE%', 'incoming AS u');

/**
 * Collections kept in PostgreSQL, served from this replica's memory.
 *
 * Writes go to PostgreSQL in one transaction each (documents, a `changes`
 * row, a NOTIFY) and are acknowledged after COMMIT, once this replica's
 * follower has applied them too (so a client reads its own writes on the
 * replica it wrote through). Reads never touch PostgreSQL: they are answered
 * from the in-memory graph the follower keeps current, and keep being
 * answered while PostgreSQL is away (stale, and saying so).
 */
export class PgStore implements StoreBackend {
  private closed = false;

  private constructor(
    private readonly pool: pg.Pool,
    readonly follower: Follower,
    private readonly opts: PgStoreOptions,
  ) {}

  /**
   * Returns at once; in the background it connects, migrates the schema
   * (under an advisory lock) and starts the follower, retrying while
   * PostgreSQL is unreachable. `ready` resolves once the replica has loaded
   * and caught up (it rejects only on a fault retrying cannot fix, such as a
   * schema newer than this service). Until then writes and reads answer 503.
   */
  static open(opts: PgStoreOptions): { store: PgStore; ready: Promise<void> } {
    const connection: pg.ClientConfig = {
      connectionString: opts.url,
      application_name: 'embedding-service',
      connectionTimeoutMillis: 5000,
    };
    const pool = new pg.Pool({ ...connection, max: opts.poolSize ?? 8, idleTimeoutMillis: 30_000 });
    // An idle pooled connection dying (PostgreSQL restarting) is expected; the pool drops it.
    pool.on('error', (err) => opts.logger.warn({ err: err.message }, 'store: idle PostgreSQL connection lost'));
    // A checked-out connection has no listener of the pool's: its socket dying between two queries
    // would be an uncaught 'error'. The query in flight (or the next one) fails and is handled there.
    pool.on('connect', (client) => client.on('error', () => undefined));
    const follower = new Follower({ pool, connection, logger: opts.logger, pollMs: opts.pollMs });
    const store = new PgStore(pool, follower, opts);
    return { store, ready: store.start() };
  }

  /** Migrates (retrying while PostgreSQL is unreachable), then loads and follows. */
  private async start(): Promise<void> {
    let backoff = 200;
    for (;;) {
      if (this.closed) return;
      try {
        await migrate(this.pool, this.opts.logger);
        break;
      } catch (err) {
        if (!(asStoreError(err) instanceof StoreUnavailableError)) throw err;
        this.opts.logger.warn({ err: (err as Error).message }, 'store: PostgreSQL not reachable yet; retrying');
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 2000);
      }
    }
    await this.follower.start();
  }

  status(): ReplicaStatus {
    const f = this.follower;
    return { applied: f.applied, head: f.head, caughtUp: f.caughtUp, connected: f.connected, lagSeconds: f.lagSeconds() };
  }

  /** Resolves true once this replica has applied `seq`, false at `deadline` (ms since epoch). */
  waitForSeq(seq: number, deadline: number): Promise<boolean> {
    return this.follower.waitFor(seq, deadline);
  }

  /** The local store's damaged-on-disk reports; PostgreSQL keeps its own integrity, so none here. */
  unavailableCollections(): { name: string; reason: string }[] {
    return [];
  }

  recoveries(): never[] {
    return [];
  }

  // -------------------------------------------------------------------------
  // Reads: memory only

  private checkServing(): void {
    if (this.closed) throw new StorageError('store is closed');
    if (!this.follower.caughtUp) throw new StoreUnavailableError('this replica is still loading its collections from PostgreSQL');
  }

  private local(name: unknown): ReplicaCollection {
    this.checkServing();
    const valid = validateName(name);
    const c = this.follower.collections.get(valid);
    if (!c) throw new NotFoundError(`collection ${valid} does not exist`);
    return c;
  }

  /**
   * A collection another replica created a moment ago may not be applied
   * here yet, so a miss catches up once before answering 404 (documents are
   * not looked up this way: `x-min-store-seq` is how a reader asks for them).
   */
  private async localOrCatchUp(name: unknown): Promise<ReplicaCollection> {
    this.checkServing();
    const valid = validateName(name);
    if (!this.follower.collections.has(valid)) await this.follower.catchUpNow().catch(() => undefined);
    return this.local(valid);
  }

  list(): CollectionInfo[] {
    this.checkServing();
    return [...this.follower.collections.values()].map((c) => c.info()).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async info(name: unknown): Promise<CollectionInfo> {
    return (await this.localOrCatchUp(name)).info();
  }

  async get(name: unknown, id: unknown): Promise<StoredDocument | undefined> {
    return (await this.localOrCatchUp(name)).get(id);
  }

  async search(name: unknown, vector: unknown, options: SearchOptions): Promise<SearchHit[]> {
    return (await this.localOrCatchUp(name)).search(vector, options);
  }

  // -------------------------------------------------------------------------
  // Writes: one transaction each, acknowledged after commit

  async create(name: unknown, settings: unknown, receipt: WriteReceipt = {}): Promise<{ created: boolean; settings: CollectionSettings }> {
    this.checkServing();
    const valid = validateName(name);
    const normalized = normalizeSettings(settings);
    const outcome = await this.transaction(async (client) => {
      // Names differ in more than letter case, as in a data directory (where they are directory
      // names): creates of names equal but for case are serialized, then the other one is refused.
      await client.query({ name: 'lock-folded-name', text: 'SELECT pg_advisory_xact_lock(hashtext(lower($1)))', values: [valid] });
      const folded = await client.query<{ name: string }>({
        name: 'find-folded-name',
        text: 'SELECT name FROM collections WHERE lower(name) = lower($1) AND name <> $1 LIMIT 1',
        values: [valid],
      });
      if (folded.rows.length > 0) {
        throw new ConflictError(`collection ${folded.rows[0]!.name} already exists; names must differ in more than letter case`);
      }
      const inserted = await client.query({
        name: 'create-collection',
        text: 'INSERT INTO collections (name, settings, seq) VALUES ($1, $2, 0) ON CONFLICT (name) DO NOTHING',
        values: [valid, JSON.stringify(normalized)],
      });
      if (inserted.rowCount === 0) {
        const existing = await client.query<{ settings: unknown }>('SELECT settings FROM collections WHERE name = $1', [valid]);
        const current = normalizeSettings(existing.rows[0]!.settings);
        if (!settingsEqual(current, normalized)) throw new ConflictError(`collection ${valid} already exists with different settings`);
        return { created: false, settings: current, seq: undefined };
      }
      const seq = await this.commitChange(client, valid, 'create', normalized);
      await client.query({ name: 'stamp-collection', text: 'UPDATE collections SET seq = $2 WHERE name = $1', values: [valid, seq] });
      return { created: true, settings: normalized, seq };
    });
    if (outcome.seq !== undefined) {
      receipt.seq = outcome.seq;
      await this.visible(outcome.seq);
      this.opts.logger.info({ collection: valid, settings: normalized, seq: outcome.seq }, 'collection created');
    }
    const local = this.follower.collections.get(valid);
    return { created: outcome.created, settings: local?.settings ?? outcome.settings };
  }

  async drop(name: unknown, receipt: WriteReceipt = {}): Promise<void> {
    this.checkServing();
    const valid = validateName(name);
    const seq = await this.transaction(async (client) => {
      const deleted = await client.query({ name: 'drop-collection', text: 'DELETE FROM collections WHERE name = $1', values: [valid] });
      if (deleted.rowCount === 0) throw new NotFoundError(`collection ${valid} does not exist`);
      return this.commitChange(client, valid, 'drop', null);
    });
    receipt.seq = seq;
    await this.visible(seq);
    this.opts.logger.info({ collection: valid, seq }, 'collection dropped');
  }

  async upsert(name: unknown, documents: unknown, receipt: WriteReceipt = {}): Promise<UpsertResult> {
    const c = await this.localOrCatchUp(name);
    const docs = validateDocuments(documents, c.settings.dimensions, c.settings.metric);
    checkStorable(c.settings, docs);
    if (docs.length === 0) return { inserted: 0, replaced: 0 };
    const result = await this.transaction(async (client) => {
      if (docs.length > COPY_THRESHOLD) await copyIncoming(client, docs);
      const seq = await this.lockCollectionAndSeq(client, c);
      const written =
        docs.length > COPY_THRESHOLD
          ? await client.query<{ inserted: number; total: number }>(UPSERT_COPIED_SQL, [c.name, seq])
          : await client.query<{ inserted: number; total: number }>({
              name: 'upsert-rows',
              text: UPSERT_ROWS_SQL,
              values: [c.name, seq, ...columns(docs)],
            });
      const { inserted, total } = written.rows[0]!;
      await this.recordChange(client, seq, c.name, 'upsert', { documents: total });
      return { seq, inserted, replaced: total - inserted };
    });
    receipt.seq = result.seq;
    await this.visible(result.seq);
    return { inserted: result.inserted, replaced: result.replaced };
  }

  async delete(name: unknown, id: unknown, receipt: WriteReceipt = {}): Promise<boolean> {
    const docId = validateId(id);
    const c = await this.localOrCatchUp(name);
    let seq: number;
    try {
      seq = await this.transaction(async (client) => {
        const taken = await this.lockCollectionAndSeq(client, c);
        const deleted = await client.query({
          name: 'delete-document',
          text: 'DELETE FROM documents WHERE collection = $1 AND id = $2',
          values: [c.name, docId],
        });
        // Nothing to delete: rolling back returns the sequence number too.
        if (deleted.rowCount === 0) throw new NothingToDelete();
        await this.recordChange(client, taken, c.name, 'delete', [docId]);
        return taken;
      });
    } catch (err) {
      if (err instanceof NothingToDelete) return false;
      throw err;
    }
    receipt.seq = seq;
    await this.visible(seq);
    return true;
  }

  // -------------------------------------------------------------------------

  /**
   * Holds the collection row (FOR SHARE: a concurrent drop waits), checks it
   * is the incarnation this replica validated against, and takes the next
   * sequence number, in one round trip.
   */
  private async lockCollectionAndSeq(client: pg.PoolClient, c: ReplicaCollection): Promise<number> {
    const { rows } = await client.query<{ created: string | null; seq: string | null }>({
      name: 'lock-and-seq',
      text: `WITH c AS (SELECT seq FROM collections WHERE name = $1 FOR SHARE),
                  s AS (UPDATE store_seq SET seq = seq + 1 WHERE EXISTS (SELECT 1 FROM c) RETURNING seq)
             SELECT (SELECT seq FROM c) AS created, (SELECT seq FROM s) AS seq`,
      values: [c.name],
    });
    const row = rows[0]!;
    // Throwing rolls the transaction back, and with it the sequence number taken.
    if (row.created === null || row.seq === null) throw new NotFoundError(`collection ${c.name} does not exist`);
    if (Number(row.created) !== c.createdSeq) throw new ConflictError(`collection ${c.name} was dropped and re-created meanwhile; retry`);
    return Number(row.seq);
  }

  /**
   * The next sequence number. Its row lock, held to COMMIT, makes sequence
   * numbers commit in order: a follower that has seen N has seen everything below.
   */
  private async nextSeq(client: pg.PoolClient): Promise<number> {
    const { rows } = await client.query<{ seq: string }>({ name: 'next-seq', text: 'UPDATE store_seq SET seq = seq + 1 RETURNING seq' });
    return Number(rows[0]!.seq);
  }

  /** The change row and its NOTIFY (delivered at COMMIT), in one round trip. */
  private async recordChange(client: pg.PoolClient, seq: number, collection: string, op: string, detail: unknown): Promise<void> {
    await client.query({
      name: 'record-change',
      text: 'WITH ch AS (INSERT INTO changes (seq, collection, op, detail) VALUES ($1, $2, $3, $4) RETURNING seq) SELECT pg_notify($5, seq::text) FROM ch',
      values: [seq, collection, op, JSON.stringify(detail), CHANGES_CHANNEL],
    });
  }

  private async commitChange(client: pg.PoolClient, collection: string, op: string, detail: unknown): Promise<number> {
    const seq = await this.nextSeq(client);
    await this.recordChange(client, seq, collection, op, detail);
    return seq;
  }

  /** Runs `body` in a transaction; connection failures become StoreUnavailableError (503 with Retry-After). */
  private async transaction<T>(body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    if (this.closed) throw new StorageError('store is closed');
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw asStoreError(err);
    }
    try {
      await client.query('BEGIN');
      const out = await body(client);
      await client.query('COMMIT');
      client.release();
      return out;
    } catch (err) {
      const mapped = asStoreError(err);
      if (mapped instanceof StoreUnavailableError) {
        client.release(err as Error);
      } else {
        await client.query('ROLLBACK').catch(() => undefined);
        client.release();
      }
      throw mapped;
    }
  }

  /** After commit: waits (bounded) until this replica shows the write, so its writer reads it back here. */
  private async visible(seq: number): Promise<void> {
    const ok = await this.follower.waitFor(seq, Date.now() + (this.opts.visibleWithinMs ?? 10_000));
    if (!ok) this.opts.logger.warn({ seq }, 'store: write committed but not yet applied locally (PostgreSQL unreachable?)');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.follower.stop();
    await this.pool.end();
  }
}

/** Rolls a delete of an absent document back (no change, no sequence number). */
class NothingToDelete extends Error {}

/** The batch as four parallel arrays for `unnest`. */
function columns(docs: readonly ValidDocument[]): [string[], (string | null)[], (string | null)[], Buffer[]] {
  return [
    docs.map((d) => d.id),
    docs.map((d) => d.text ?? null),
    docs.map((d) => (d.metadata === undefined ? null : JSON.stringify(d.metadata))),
    docs.map((d) => encodeVector(d.vector)),
  ];
}

/** CSV field: NULL is an unquoted empty field, everything else is quoted. */
function csv(value: string | null): string {
  return value === null ? '' : `"${value.replaceAll('"', '""')}"`;
}

/** Streams the batch into the session's `incoming` temp table with COPY. */
async function copyIncoming(client: pg.PoolClient, docs: readonly ValidDocument[]): Promise<void> {
  await client.query(
    'CREATE TEMP TABLE IF NOT EXISTS incoming (ord integer, id text, text text, metadata json, vector bytea) ON COMMIT DELETE ROWS',
  );
  const rows = (function* () {
    let ord = 0;
    for (const d of docs) {
      const meta = d.metadata === undefined ? null : JSON.stringify(d.metadata);
      yield `${++ord},${csv(d.id)},${csv(d.text ?? null)},${csv(meta)},"\\x${encodeVector(d.vector).toString('hex')}"\n`;
    }
  })();
  await pipeline(
    Readable.from(rows),
    client.query(copyFrom('COPY incoming (ord, id, text, metadata, vector) FROM STDIN WITH (FORMAT csv)')),
  );
}
