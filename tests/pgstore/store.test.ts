/**
 * The PostgreSQL store against a real PostgreSQL (a throwaway cluster from
 * Debian's binaries): replicas in one process, each with its own pool and
 * follower, checked against brute force and against PostgreSQL's own rows.
 */

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WriteReceipt } from '../../src/index/index.js';
import { CollectionStore, ConflictError, NotFoundError, silentLogger } from '../../src/index/index.js';
import { StoreUnavailableError } from '../../src/pgstore/errors.js';
import { MIGRATIONS } from '../../src/pgstore/migrations.js';
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
    expect(await b.info('docs')).toMatchObject({ name: 'docs', count: 0 });

    const vs = vectors(40, 8, 1);
    const docs = vs.map((vector, i) => ({ id: `d${i}`, vector, text: `text ${i}`, metadata: { i, z: 'last', a: [1, 2.5e-7] } }));
    const w: WriteReceipt = {};
    // 40 > the COPY threshold: this batch goes through COPY.
    expect(await a.upsert('docs', docs, w)).toEqual({ inserted: 40, replaced: 0 });
    expect(w.seq).toBe(receipt.seq! + 1);
    // The writer reads its own write without waiting.
    expect((await a.info('docs')).count).toBe(40);
    expect(await b.waitForSeq(w.seq!, Date.now() + 5000)).toBe(true);
    expect((await b.info('docs')).count).toBe(40);

    const query = vectors(1, 8, 99)[0]!;
    const hits = (await b.search('docs', query, { k: 5 })).map((h) => h.id);
    expect(hits).toEqual(bruteCosine(query, docs, 5));
    const got = (await b.get('docs', 'd7'))!;
    expect(got.text).toBe('text 7');
    // Metadata comes back as written: key order and number spelling kept.
    expect(JSON.stringify(got.metadata)).toBe(JSON.stringify(docs[7]!.metadata));
    const norm = Math.hypot(...docs[7]!.vector);
    got.vector.forEach((x, i) => expect(x).toBeCloseTo(docs[7]!.vector[i]! / norm, 6));
  });

  it('collection names differ in more than letter case (as in a data directory), even when created at once', async () => {
    const [a, b] = stores as [PgStore, PgStore];
    await expect(a.create('Docs', { dimensions: 8 })).rejects.toThrow(
      /collection docs already exists; names must differ in more than letter case/,
    );
    await expect(a.create('NUL', { dimensions: 8 })).rejects.toThrow(/reserved device name/);
    const raced = await Promise.allSettled([a.create('Pair', { dimensions: 8 }), b.create('pair', { dimensions: 8 })]);
    expect(raced.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(String((raced.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason)).toMatch(/letter case/);
    const names = cluster.psql("SELECT name FROM collections WHERE lower(name) = 'pair'", 'store_test').trim().split('\n');
    expect(names).toHaveLength(1);
    await a.drop(names[0]!); // the tests after this one count the collections
  });

  it('small batches (prepared INSERT), replacements and deletes replicate in order', async () => {
    const [a, b] = stores as [PgStore, PgStore];
    const vs = vectors(3, 8, 2);
    expect(
      await a.upsert('docs', [
        { id: 'd1', vector: vs[0]!, text: 'replaced' },
        { id: 'new', vector: vs[1]! },
      ]),
    ).toEqual({ inserted: 1, replaced: 1 });
    const del: WriteReceipt = {};
    expect(await b.delete('docs', 'd2', del)).toBe(true);
    expect(await b.delete('docs', 'd2')).toBe(false);
    expect(await a.waitForSeq(del.seq!, Date.now() + 5000)).toBe(true);
    for (const s of [a, b]) {
      expect(await s.get('docs', 'd1')).toMatchObject({ text: 'replaced' });
      expect((await s.get('docs', 'd1'))!.metadata).toBeUndefined();
      expect(await s.get('docs', 'd2')).toBeUndefined();
      expect((await s.info('docs')).count).toBe(40);
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
    await expect(a.info('gone')).rejects.toBeInstanceOf(NotFoundError);
    expect(cluster.psql("SELECT count(*) FROM documents WHERE collection = 'gone'", 'store_test').trim()).toBe('0');
  });

  it('lexical, hybrid and funnel collections answer exactly as the local store does with the same writes', async () => {
    const [a, b] = stores as [PgStore, PgStore];
    const local = await CollectionStore.open(mkdtempSync(join(tmpdir(), 'pg-parity-')));
    try {
      const words = ['alpha', 'beta', 'gamma', 'delta', 'river', 'stone', 'cloud', 'night'];
      const r = rng(7);
      const settings = { dimensions: 16, lexical: true, index_dimensions: 8, storage: 'int8' };
      await a.create('hybrid', settings);
      await local.create('hybrid', settings);
      const vs = vectors(120, 16, 11);
      const docs = vs.map((vector, i) => ({
        id: `h${i}`,
        vector,
        text: Array.from({ length: 6 }, () => words[Math.floor((r() + 0.5) * words.length)]).join(' '),
        metadata: { i },
      }));
      // Writes split between the replicas, replacements and deletes included, in one order.
      const writes: [PgStore, unknown[]][] = [
        [a, docs.slice(0, 50)],
        [b, docs.slice(50, 120)],
        [a, docs.slice(10, 30).map((d) => ({ ...d, text: `${d.text} river river` }))],
      ];
      let last = 0;
      for (const [store, batch] of writes) {
        const receipt: WriteReceipt = {};
        await store.upsert('hybrid', batch, receipt);
        await local.upsert('hybrid', batch);
        last = receipt.seq!;
      }
      for (const id of ['h3', 'h77']) {
        const receipt: WriteReceipt = {};
        await b.delete('hybrid', id, receipt);
        await local.delete('hybrid', id);
        last = receipt.seq!;
      }
      for (const s of [a, b]) expect(await s.waitForSeq(last, Date.now() + 5000)).toBe(true);
      // A replica loading all this at start (in write order) must answer the same as those that followed it.
      const late = await replica();
      const query = vectors(1, 16, 12)[0]!;
      for (const options of [
        { k: 10 },
        { k: 10, mode: 'lexical' as const, text: 'river stone' },
        { k: 10, mode: 'hybrid' as const, text: 'river night', fusion: { method: 'weighted' as const, alpha: 0.3 } },
        { k: 5, offset: 5, mode: 'hybrid' as const, text: 'gamma', include: ['vector' as const] },
      ]) {
        const expected = local.search('hybrid', options.mode === 'lexical' ? undefined : query, options);
        expect(expected.length).toBeGreaterThan(0);
        for (const s of [a, b, late])
          expect(await s.search('hybrid', options.mode === 'lexical' ? undefined : query, options)).toEqual(expected);
      }
      expect(await b.get('hybrid', 'h12')).toEqual(local.get('hybrid', 'h12'));
      expect((await b.info('hybrid')).count).toBe(local.info('hybrid').count);
      await a.drop('hybrid');
    } finally {
      await local.close();
    }
  });

  it('a replica started later loads everything from PostgreSQL', async () => {
    const late = await replica();
    expect(late.list().map((c) => [c.name, c.count])).toEqual([['docs', 40]]);
    expect(await late.get('docs', 'd1')).toMatchObject({ text: 'replaced' });
    expect(late.status()).toMatchObject({ caughtUp: true, connected: true });
  });

  it('PostgreSQL down: writes fail as unavailable, reads are served from memory; back up: replicas catch up by themselves', async () => {
    const [a, b] = stores as [PgStore, PgStore];
    const before = await b.search('docs', vectors(1, 8, 5)[0]!, { k: 3 });
    cluster.stop('fast');
    try {
      await expect(a.upsert('docs', [{ id: 'down', vector: vectors(1, 8, 6)[0]! }])).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(await b.search('docs', vectors(1, 8, 5)[0]!, { k: 3 })).toEqual(before);
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
    expect(await b.get('docs', 'after')).toBeDefined();
    await expect.poll(() => b.status().connected, { timeout: 5000 }).toBe(true);
  });
});
