import type { Pool, PoolClient } from 'pg';
import type { Logger } from '../index/types.js';

/**
 * The PostgreSQL schema, as an ordered list of migrations. A migration is
 * never edited once released: a change is a new entry at the end.
 *
 * Tables:
 *   store_seq     one row: the last change sequence number handed out. Every
 *                 write takes `UPDATE … RETURNING` on it as its last step before
 *                 commit, so its row lock orders writers and sequence numbers
 *                 become visible in commit order (a follower that has seen N
 *                 has seen everything below N; a bigserial would not promise that).
 *   collections   name → settings (normalized, as the service stores them).
 *   documents     the current state: one row per live document, with the
 *                 sequence number of the write that last set it and its
 *                 position in that write.
 *   changes       append-only: one row per committed write (create, drop,
 *                 upsert, delete), the source of truth replicas follow.
 */
export const MIGRATIONS: readonly { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'collections, documents, change sequence',
    sql: `
CREATE TABLE store_seq (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  seq bigint NOT NULL
);
INSERT INTO store_seq (id, seq) VALUES (true, 0);

CREATE TABLE collections (
  name text PRIMARY KEY,
  settings jsonb NOT NULL,
  seq bigint NOT NULL
);

CREATE TABLE documents (
  collection text NOT NULL REFERENCES collections (name) ON DELETE CASCADE,
  id text NOT NULL,
  text text,
  -- json, not jsonb: metadata comes back byte for byte as written (key order, number spelling)
  metadata json,
  -- float32 little-endian, the full vector as the service stores it
  vector bytea NOT NULL,
  seq bigint NOT NULL,
  -- position within its write: replicas apply (and load) documents in write order, so every
  -- replica numbers them alike and breaks score ties alike
  ord integer NOT NULL,
  PRIMARY KEY (collection, id)
);
CREATE INDEX documents_change ON documents (seq, ord);
CREATE INDEX documents_order ON documents (collection, seq, ord);

CREATE TABLE changes (
  seq bigint PRIMARY KEY,
  collection text NOT NULL,
  op text NOT NULL CHECK (op IN ('create', 'drop', 'upsert', 'delete')),
  -- create: the settings; delete: the ids removed; upsert: the document count
  detail jsonb,
  committed_at timestamptz NOT NULL DEFAULT now()
);
`,
  },
];

/** Key of the session-level advisory lock that serializes migrations between replicas. */
export const MIGRATION_LOCK_KEY = 0x656d_6273; // "embs"

/**
 * Brings the schema to the newest version. Replicas starting together take
 * the same advisory lock, so exactly one applies each migration (each in its
 * own transaction) and the others then find nothing left to do.
 */
export async function migrate(pool: Pool, logger: Logger): Promise<number> {
  const client = await pool.connect();
  let version: number;
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await client.query(
        'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
      );
      const { rows } = await client.query<{ version: number }>('SELECT coalesce(max(version), 0)::int AS version FROM schema_migrations');
      let current = rows[0]!.version;
      const newest = MIGRATIONS[MIGRATIONS.length - 1]!.version;
      if (current > newest) {
        throw new Error(`the database schema is at version ${current}, newer than this service knows (${newest}); upgrade the service`);
      }
      for (const m of MIGRATIONS) {
        if (m.version <= current) continue;
        await inTransaction(client, async () => {
          await client.query(m.sql);
          await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
        });
        logger.info({ version: m.version, migration: m.name }, 'schema migrated');
        current = m.version;
      }
      version = current;
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  } catch (err) {
    // A connection that failed must not go back to the pool (the session lock dies with it).
    client.release(err as Error);
    throw err;
  }
  client.release();
  return version;
}

export async function inTransaction<T>(client: PoolClient, body: () => Promise<T>, begin = 'BEGIN'): Promise<T> {
  await client.query(begin);
  try {
    const out = await body();
    await client.query('COMMIT');
    return out;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
