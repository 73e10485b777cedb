/**
 * The PostgreSQL store against a real PostgreSQL (a throwaway cluster from
 * Debian's binaries): replicas in one process, each with its own pool and
 * follower, checked against brute force and against PostgreSQL's own rows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, silentLogger } from '../../src/index/index.js';
import { StoreUnavailableError } from '../../src/pgstore/errors.js';
import { MIGRATIONS } from '../../src/pgstore/migrations.js';
import type { WriteReceipt } from '../../src/index/index.js';
import { PgStore } from '../../src/pgstore/pg-store.js';
import { postgresUnavailableReason, startTempCluster, type TempCluster } from '../../tools/postgres.js';

const skip = postgresUnavailableReason();
if (skip) console.warn(skip);

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

function vectors(n: number, dims: number, seed: number): number[][] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Array.from({ length: dims }, r));
}

function bruteCosine(query: number[], docs: { id: string; vector: number[] }[], k: number): string[] {
  const norm = (v: number[]): number => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  const q = norm(query);
  return docs
    .map((d) => ({ id: d.id, s: d.vector.reduce((s, x, i) => s + x * query[i]!, 0) / (norm(d.vector) * q) }))
    .sort((a, b) => b.s - a.s)
    .slice(0, k)
    .map((d) => d.id);
}

describe.skipIf(skip !== undefined)('PostgreSQL store', () => {
  let cluster: TempCluster;
  let url: string;
  const stores: PgStore[] = [];

  async function replica(pollMs = 200): Promise<PgStore> {
    const { store, ready } = PgStore.open({ url, logger: silentLogger, pollMs, visibleWithinMs: 3000 });
    stores.push(store);
    await ready;
    return store;
  }

  beforeAll(async () => {
    cluster = await startTempCluster();
    url = cluster.createDatabase('store_test');
  });

  afterAll(async () => {
    for (const s of stores) await s.close();
    cluster?.destroy();
  });

  it('replicas starting together migrate once, under the advisory lock', async () => {
    await Promise.all([replica(), replica(), replica()]);
    const versions = cluster.psql('SELECT version FROM schema_migrations ORDER BY version', 'store_test').trim().split('\n');
    expect(versions.map(Number)).toEqual(MIGRATIONS.map((m) => m.version));
  });

  it("a write through one replica is readable through another once it has applied the write's sequence number", async () => {
    const [a, b] = stores as [PgStore, PgStore];
    const receipt: WriteReceipt = {};
    expect(await a.create('docs', { dimensions: 8 }, receipt)).toMatchObject({ created: true });
    expect(receipt.seq).toBeGreaterThan(0);
    expect(await b.waitForSeq(receipt.seq!, Date.now() + 5000)).toBe(true);
    expect(b.info('docs')).toMatchObject({ name: 'docs', count: 0 });

    const vs = vectors(40, 8, 1);
    const docs = vs.map((vector, i) => ({ id: `d${i}`, vector, text: `text ${i}`, metadata: { i, z: 'last', a: [1, 2.5e-7] } }));
    const w: WriteReceipt = {};
    // 40 > the COPY threshold: this batch goes through COPY.
    expect(await a.upsert('docs', docs, w)).toEqual({ inserted: 40, replaced: 0 });
    expect(w.seq).toBe(receipt.seq! + 1);
    // The writer reads its own write without waiting.
    expect(a.info('docs').count).toBe(40);
    expect(await b.waitForSeq(w.seq!, Date.now() + 5000)).toBe(true);
    expect(b.info('docs').count).toBe(40);

    const query = vectors(1, 8, 99)[0]!;
    const hits = b.search('docs', query, { k: 5 }).map((h) => h.id);
    expect(hits).toEqual(bruteCosine(query, docs, 5));
    const got = b.get('docs', 'd7')!;
    expect(got.text).toBe('text 7');
    // Metadata comes back as written: key order and number spelling kept.
    expect(JSON.stringify(got.metadata)).toBe(JSON.stringify(docs[7]!.metadata));
    const norm = Math.hypot(...docs[7]!.vector);
    got.vector.forEach((x, i) => expect(x).toBeCloseTo(docs[7]!.vector[i]! / norm, 6));
  });

  it('small batches (prepared INSERT), replacements and deletes replicate in order', async () => {
    const [a, b] = stores as [PgStore, PgStore];
    const vs = vectors(3, 8, 2);
    expect(await a.upsert('docs', [{ id: 'd1', vector: vs[0]!, text: 'replaced' }, { id: 'new', vector: vs[1]! }])).toEqual({ inserted: 1, replaced: 1 });
    const del: WriteReceipt = {};
    expect(await b.delete('docs', 'd2', del)).toBe(true);
    expect(await b.delete('docs', 'd2')).toBe(false);
    expect(await a.waitForSeq(del.seq!, Date.now() + 5000)).toBe(true);
    for (const s of [a, b]) {
      expect(s.get('docs', 'd1')).toMatchObject({ text: 'replaced' });
      expect(s.get('docs', 'd1')!.metadata).toBeUndefined();
      expect(s.get('docs', 'd2')).toBeUndefined();
      expect(s.info('docs').count).toBe(40);
    }
    // PostgreSQL holds the same state.
    expect(cluster.psql("SELECT count(*) FROM documents WHERE collection = 'docs'", 'store_test').trim()).toBe('40');
  });

  it('create is idempotent, conflicting settings are a 409, unknown collections a 404, drop replicates', async () => {
    const [a, b] = stores as [PgStore, PgStore];
    expect(await b.create('docs', { dimensions: 8 })).toMatchObject({ created: false });
    await expect(b.create('docs', { dimensions: 9 })).rejects.toBeInstanceOf(ConflictError);
    await expect(a.upsert('missing', [{ id: 'x', vector: [1] }])).rejects.toBeInstanceOf(NotFoundError);
    const r: WriteReceipt = {};
    await a.create('gone', { dimensions: 2, metric: 'l2' });
    // b writes to a collection a just created: b catches up before answering 404.
    await b.upsert('gone', [{ id: 'x', vector: [1, 2] }]);
    await b.drop('gone', r);
    expect(await a.waitForSeq(r.seq!, Date.now() + 5000)).toBe(true);
    expect(() => a.info('gone')).toThrow(NotFoundError);
    expect(cluster.psql("SELECT count(*) FROM documents WHERE collection = 'gone'", 'store_test').trim()).toBe('0');
  });

  it('a replica started later loads everything from PostgreSQL', async () => {
    const late = await replica();
    expect(late.list().map((c) => [c.name, c.count])).toEqual([['docs', 40]]);
    expect(late.get('docs', 'd1')).toMatchObject({ text: 'replaced' });
    expect(late.status()).toMatchObject({ caughtUp: true, connected: true });
  });

  it('PostgreSQL down: writes fail as unavailable, reads are served from memory; back up: replicas catch up by themselves', async () => {
    const [a, b] = stores as [PgStore, PgStore];
    const before = b.search('docs', vectors(1, 8, 5)[0]!, { k: 3 });
    cluster.stop('fast');
    try {
      await expect(a.upsert('docs', [{ id: 'down', vector: vectors(1, 8, 6)[0]! }])).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(b.search('docs', vectors(1, 8, 5)[0]!, { k: 3 })).toEqual(before);
      // The follower notices within a few polls.
      await expect.poll(() => b.status().connected, { timeout: 5000 }).toBe(false);
    } finally {
      cluster.start();
    }
    // The pool reconnects on the next write; the follower by itself.
    let receipt: WriteReceipt = {};
    await expect
      .poll(
        async () => {
          receipt = {};
          return a.upsert('docs', [{ id: 'after', vector: vectors(1, 8, 7)[0]! }], receipt).then(
            () => true,
            () => false,
          );
        },
        { timeout: 15_000, interval: 200 },
      )
      .toBe(true);
    expect(await b.waitForSeq(receipt.seq!, Date.now() + 10_000)).toBe(true);
    expect(b.get('docs', 'after')).toBeDefined();
    await expect.poll(() => b.status().connected, { timeout: 5000 }).toBe(true);
  });
});
