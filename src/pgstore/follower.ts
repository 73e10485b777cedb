import pg from 'pg';
import type { Logger } from '../index/types.js';
import type { ValidDocument } from '../index/validate.js';
import { normalizeSettings } from '../index/validate.js';
import { decodeVector, ReplicaCollection } from './memory.js';

/** The NOTIFY channel every write signals on commit (payload: its sequence number). */
export const CHANGES_CHANNEL = 'store_changes';

/** Documents read per round trip, at start and while catching up. */
const PAGE = 2000;

interface ChangeRow {
  seq: string;
  collection: string;
  op: 'create' | 'drop' | 'upsert' | 'delete';
  detail: unknown;
}

interface DocRow {
  id: string;
  text: string | null;
  metadata: string | null;
  vector: Buffer;
  /** bigint, as pg returns it. */
  seq: string;
  ord: number;
}

export interface FollowerOptions {
  /** Where to read from (the store's pool). */
  pool: pg.Pool;
  /** The connection settings for the dedicated LISTEN connection. */
  connection: pg.ClientConfig;
  logger: Logger;
  /** How often to read the head even without a notification (also how a dead connection is noticed). Default 1000 ms. */
  pollMs?: number;
  /** Longest wait between reconnection attempts. Default 2000 ms. */
  maxBackoffMs?: number;
}

/**
 * Keeps a replica's in-memory collections equal to PostgreSQL's.
 *
 * At start it reads every collection and document in one REPEATABLE READ
 * snapshot and notes the sequence number that snapshot is at. Afterwards it
 * applies the `changes` rows above what it has applied, in sequence order,
 * each change all at once (a search sees a write wholly or not at all).
 * LISTEN/NOTIFY only wakes it early: the table is the source of truth, and a
 * poll every `pollMs` picks up anything a lost notification or a reconnect
 * missed. The follower is the only writer of the in-memory state.
 */
export class Follower {
  readonly collections = new Map<string, ReplicaCollection>();
  /** Highest sequence number whose change is visible in memory. */
  applied = 0;
  /** Highest sequence number PostgreSQL was last seen at. */
  head = 0;
  /** Set once the start-up snapshot is loaded and the backlog after it applied. */
  caughtUp = false;
  /** Whether PostgreSQL answered the last poll (false: reads may be stale). */
  connected = false;
  /** When the replica last knew it was current (head read and applied), ms since epoch. */
  currentAt = 0;
  /** When the oldest change this replica has seen but not yet applied was first noticed. */
  private behindSince: number | undefined;

  private listener: pg.Client | undefined;
  private stopped = false;
  private round: Promise<void> | undefined;
  private again = false;
  private waiters: { seq: number; resolve: () => void }[] = [];
  private pollTimer: NodeJS.Timeout | undefined;
  private readonly pollMs: number;
  private readonly maxBackoffMs: number;
  private loaded = false;

  constructor(private readonly opts: FollowerOptions) {
    this.pollMs = opts.pollMs ?? 1000;
    this.maxBackoffMs = opts.maxBackoffMs ?? 2000;
  }

  /** Starts listening and loading; resolves once caught up (retrying while PostgreSQL is unreachable). */
  start(): Promise<void> {
    void this.listenLoop();
    this.pollTimer = setInterval(() => this.poke(), this.pollMs);
    this.pollTimer.unref();
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.caughtUp || this.stopped) resolve();
        else setTimeout(check, 20).unref();
      };
      check();
    });
  }

  /** Seconds this replica is behind: 0 when current, else since it first saw an unapplied change. */
  lagSeconds(now = Date.now()): number {
    return this.behindSince === undefined ? 0 : (now - this.behindSince) / 1000;
  }

  /** Asks for a catch-up round soon (coalesced with one already running). */
  poke(): void {
    if (this.stopped) return;
    if (this.round) {
      this.again = true;
      return;
    }
    this.round = this.runRounds().finally(() => {
      this.round = undefined;
    });
  }

  /** Runs a catch-up round now and resolves when it (and any it coalesced) is done. */
  async catchUpNow(): Promise<void> {
    this.poke();
    while (this.round) await this.round;
  }

  /**
   * Resolves true once `seq` is applied, false at `deadline` (ms since epoch).
   * Waiting never needs PostgreSQL beyond what the follower already does.
   */
  waitFor(seq: number, deadline: number): Promise<boolean> {
    if (this.applied >= seq) return Promise.resolve(true);
    this.poke();
    return new Promise((resolve) => {
      const waiter = { seq, resolve: () => resolve(true) };
      this.waiters.push(waiter);
      const timer = setTimeout(
        () => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve(this.applied >= seq);
        },
        Math.max(0, deadline - Date.now()),
      );
      timer.unref();
      waiter.resolve = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    const l = this.listener;
    this.listener = undefined;
    if (l) await l.end().catch(() => undefined);
    while (this.round) await this.round.catch(() => undefined);
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  // -------------------------------------------------------------------------

  /** Keeps one LISTEN connection open, reconnecting with backoff; every (re)connect triggers a catch-up. */
  private async listenLoop(): Promise<void> {
    let backoff = 100;
    while (!this.stopped) {
      const client = new pg.Client(this.opts.connection);
      const ended = new Promise<void>((resolve) => {
        client.on('error', (err) => {
          this.opts.logger.warn({ err: err.message }, 'store: LISTEN connection lost');
          resolve();
        });
        client.on('end', () => resolve());
      });
      try {
        await client.connect();
        client.on('notification', () => this.poke());
        await client.query(`LISTEN ${CHANGES_CHANNEL}`);
        this.listener = client;
        backoff = 100;
        this.poke();
        await ended;
      } catch (err) {
        if (!this.stopped) this.opts.logger.warn({ err: (err as Error).message }, 'store: cannot reach PostgreSQL; retrying');
      }
      this.listener = undefined;
      await client.end().catch(() => undefined);
      if (this.stopped) return;
      this.connected = false;
      await new Promise((r) => setTimeout(r, backoff).unref());
      backoff = Math.min(backoff * 2, this.maxBackoffMs);
    }
  }

  private async runRounds(): Promise<void> {
    do {
      this.again = false;
      try {
        if (!this.loaded) await this.load();
        else await this.catchUp();
        this.connected = true;
      } catch (err) {
        if (this.connected || !this.caughtUp) {
          this.opts.logger.warn({ err: (err as Error).message }, 'store: catch-up failed; serving from memory until PostgreSQL answers');
        }
        this.connected = false;
        return; // the poll timer or the reconnect will try again
      }
    } while (this.again && !this.stopped);
  }

  /** The start-up load: every collection and document as of one snapshot. */
  private async load(): Promise<void> {
    const started = Date.now();
    const client = await this.opts.pool.connect();
    let documents = 0;
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const head = Number((await client.query<{ seq: string }>('SELECT seq FROM store_seq')).rows[0]!.seq);
      const { rows } = await client.query<{ name: string; settings: unknown; seq: string }>(
        'SELECT name, settings, seq FROM collections ORDER BY name',
      );
      const collections = new Map<string, ReplicaCollection>();
      for (const row of rows) {
        const c = new ReplicaCollection(row.name, normalizeSettings(row.settings), Number(row.seq));
        // In write order (seq, ord): the labels, graph and tie order come out as on a replica that applied every change.
        let after = ['0', 0] as [string, number];
        for (;;) {
          const page = await client.query<DocRow>({
            name: 'load-page',
            text: 'SELECT id, text, metadata::text AS metadata, vector, seq, ord FROM documents WHERE collection = $1 AND (seq, ord) > ($2, $3) ORDER BY seq, ord LIMIT $4',
            values: [row.name, after[0], after[1], PAGE],
          });
          if (page.rows.length === 0) break;
          c.upsert(page.rows.map((r) => toDocument(r, c.settings.dimensions)));
          documents += page.rows.length;
          const last = page.rows[page.rows.length - 1]!;
          after = [last.seq, last.ord];
          if (page.rows.length < PAGE) break;
        }
        collections.set(row.name, c);
      }
      await client.query('COMMIT');
      this.collections.clear();
      for (const [name, c] of collections) this.collections.set(name, c);
      this.setApplied(head);
      this.head = Math.max(this.head, head);
      this.loaded = true;
      this.opts.logger.info(
        { collections: collections.size, documents, seq: head, ms: Date.now() - started },
        'store: replica loaded from PostgreSQL',
      );
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release(err as Error);
      throw err;
    }
    client.release();
    await this.catchUp();
  }

  /** Applies every change above `applied`, as of one snapshot. */
  private async catchUp(): Promise<void> {
    const client = await this.opts.pool.connect();
    try {
      // A waiter (a write here, or x-min-store-seq) already knows there is something to read; the
      // periodic poll first asks cheaply whether there is.
      if (!this.waiters.some((w) => w.seq > this.applied)) {
        const headNow = Number((await client.query<{ seq: string }>({ name: 'head', text: 'SELECT seq FROM store_seq' })).rows[0]!.seq);
        this.head = Math.max(this.head, headNow);
        if (headNow <= this.applied) {
          this.markCurrent();
          client.release();
          return;
        }
      }
      this.behindSince ??= Date.now();
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      // Every sequence number is committed together with its change row, so the newest change in
      // this snapshot is the snapshot's head.
      const changes = await client.query<ChangeRow>({
        name: 'changes',
        text: 'SELECT seq, collection, op, detail FROM changes WHERE seq > $1 ORDER BY seq',
        values: [this.applied],
      });
      for (const ch of changes.rows) {
        const seq = Number(ch.seq);
        // A change's documents are read whole before any is applied: searches see all of it or none.
        const docs = ch.op === 'upsert' ? await this.readChangeDocs(client, seq) : [];
        await this.apply(ch, seq, docs);
      }
      await client.query('COMMIT');
      const head = changes.rows.length > 0 ? Number(changes.rows[changes.rows.length - 1]!.seq) : this.applied;
      this.setApplied(head);
      this.head = Math.max(this.head, head);
      if (this.head <= this.applied) this.markCurrent();
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release(err as Error);
      throw err;
    }
    client.release();
  }

  /** The documents a change wrote that no later change (in this snapshot) has overwritten: the later one brings its own. */
  private async readChangeDocs(client: pg.PoolClient, seq: number): Promise<DocRow[]> {
    const out: DocRow[] = [];
    let after = 0;
    for (;;) {
      const page = await client.query<DocRow>({
        name: 'change-page',
        text: 'SELECT id, text, metadata::text AS metadata, vector, seq, ord FROM documents WHERE seq = $1 AND ord > $2 ORDER BY ord LIMIT $3',
        values: [seq, after, PAGE],
      });
      out.push(...page.rows);
      if (page.rows.length < PAGE) return out;
      after = page.rows[page.rows.length - 1]!.ord;
    }
  }

  private async apply(ch: ChangeRow, seq: number, docs: DocRow[]): Promise<void> {
    switch (ch.op) {
      case 'create':
        this.collections.set(ch.collection, new ReplicaCollection(ch.collection, normalizeSettings(ch.detail), seq));
        return;
      case 'drop':
        this.collections.delete(ch.collection);
        return;
      case 'upsert': {
        const c = this.collections.get(ch.collection);
        if (!c) throw new Error(`change ${seq} writes to collection ${ch.collection}, which this replica does not hold`);
        c.upsert(docs.map((r) => toDocument(r, c.settings.dimensions)));
        await c.maybeCompact();
        return;
      }
      case 'delete': {
        const c = this.collections.get(ch.collection);
        if (!c) throw new Error(`change ${seq} deletes from collection ${ch.collection}, which this replica does not hold`);
        c.delete(ch.detail as string[]);
        await c.maybeCompact();
        return;
      }
    }
  }

  private setApplied(seq: number): void {
    if (seq < this.applied) return;
    this.applied = seq;
    if (this.waiters.length === 0) return;
    const keep: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (w.seq <= seq) w.resolve();
      else keep.push(w);
    }
    this.waiters = keep;
  }

  private markCurrent(): void {
    this.behindSince = undefined;
    this.currentAt = Date.now();
    this.caughtUp = true;
  }
}

function toDocument(r: DocRow, dimensions: number): ValidDocument {
  const d: ValidDocument = { id: r.id, vector: decodeVector(r.vector, dimensions) };
  if (r.text !== null) d.text = r.text;
  if (r.metadata !== null) d.metadata = JSON.parse(r.metadata) as Record<string, unknown>;
  return d;
}
