import { readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CollectionStore, ConflictError, NotFoundError, StorageError, ValidationError } from '../../src/index/index.js';
import { makeTempDir, Rng } from './helpers.js';

function randomVector(rng: Rng, dims: number): number[] {
  return Array.from({ length: dims }, () => rng.gauss());
}

function normalized(v: ArrayLike<number>): number[] {
  const n = Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));
  return Array.from(v, (x) => x / n);
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-6): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(Math.abs(actual[i]! - expected[i]!)).toBeLessThanOrEqual(tol);
}

describe('collection lifecycle', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let store: CollectionStore;

  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir());
    store = await CollectionStore.open(dir);
  });
  afterEach(async () => {
    await store.close();
    await cleanup();
  });

  it('creates with defaults, is idempotent for equal settings, conflicts on different ones', async () => {
    const r1 = await store.create('docs', { dimensions: 8 });
    expect(r1).toEqual({ created: true, settings: { metric: 'cosine', dimensions: 8, hnsw: { m: 16, ef_construction: 200 } } });
    // Same settings spelled out with their defaults: still the same collection.
    const r2 = await store.create('docs', { dimensions: 8, metric: 'cosine', hnsw: { m: 16, ef_construction: 200 } });
    expect(r2.created).toBe(false);
    await expect(store.create('docs', { dimensions: 8, metric: 'l2' })).rejects.toBeInstanceOf(ConflictError);
    await expect(store.create('docs', { dimensions: 9 })).rejects.toBeInstanceOf(ConflictError);
    await expect(store.create('docs', { dimensions: 8, query_prompt_name: 'query' })).rejects.toBeInstanceOf(ConflictError);
    expect(store.list().map((c) => c.name)).toEqual(['docs']);
  });

  it('rejects bad names everywhere, before touching the disk', async () => {
    for (const name of ['../x', '', 'a'.repeat(65), 'a/b', 'a.b', '.', '..', 'x y', 42]) {
      await expect(store.create(name, { dimensions: 4 })).rejects.toBeInstanceOf(ValidationError);
      expect(() => store.get(name, 'id')).toThrow(ValidationError);
    }
    await expect(store.create('a'.repeat(64), { dimensions: 4 })).resolves.toMatchObject({ created: true });
    await expect(store.create('A-z_09', { dimensions: 4 })).resolves.toMatchObject({ created: true });
    expect((await readdir(path.join(dir, 'collections'))).sort()).toEqual(['A-z_09', 'a'.repeat(64)].sort());
    expect((await readdir(dir)).sort()).toEqual(['LOCK', 'collections']);
  });

  it('validates settings', async () => {
    const bad: unknown[] = [
      undefined,
      {},
      { dimensions: 0 },
      { dimensions: 1.5 },
      { dimensions: 4, metric: 'dot' },
      { dimensions: 4, hnsw: { m: 1 } },
      { dimensions: 4, hnsw: { ef_construction: 0 } },
      { dimensions: 4, hnsw: { m: 16, extra: 1 } },
      { dimensions: 4, layer: '3' },
      { dimensions: 4, document_prompt_name: '' },
      { dimensions: 4, unknown: true },
    ];
    for (const s of bad) await expect(store.create('c', s)).rejects.toBeInstanceOf(ValidationError);
    expect(store.list()).toEqual([]);
  });

  it('lists, reports counts and drops (removing the directory)', async () => {
    await store.create('b', { dimensions: 2, metric: 'l2', layer: 6, document_prompt_name: 'doc' });
    await store.create('a', { dimensions: 2 });
    await store.upsert('b', [
      { id: '1', vector: [1, 0] },
      { id: '2', vector: [0, 1] },
    ]);
    expect(store.list()).toEqual([
      { name: 'a', settings: { metric: 'cosine', dimensions: 2, hnsw: { m: 16, ef_construction: 200 } }, count: 0 },
      {
        name: 'b',
        settings: { metric: 'l2', dimensions: 2, layer: 6, document_prompt_name: 'doc', hnsw: { m: 16, ef_construction: 200 } },
        count: 2,
      },
    ]);
    expect(store.info('b').count).toBe(2);
    await store.drop('b');
    expect(store.list().map((c) => c.name)).toEqual(['a']);
    expect(await readdir(path.join(dir, 'collections'))).toEqual(['a']);
    expect(() => store.info('b')).toThrow(NotFoundError);
    await expect(store.drop('b')).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.upsert('b', [])).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.delete('b', '1')).rejects.toBeInstanceOf(NotFoundError);
    expect(() => store.search('b', [1, 0], { k: 1 })).toThrow(NotFoundError);
    // The name is free again, with new settings.
    await expect(store.create('b', { dimensions: 3 })).resolves.toMatchObject({ created: true });
    expect(store.info('b').count).toBe(0);
  });

  it('refuses operations after close', async () => {
    await store.create('a', { dimensions: 2 });
    await store.close();
    expect(() => store.list()).toThrow(StorageError);
    await expect(store.upsert('a', [{ id: 'x', vector: [1, 1] }])).rejects.toBeInstanceOf(StorageError);
  });
});

describe('documents', () => {
  let cleanup: () => Promise<void>;
  let store: CollectionStore;
  const dims = 16;

  beforeEach(async () => {
    let dir: string;
    ({ dir, cleanup } = await makeTempDir());
    store = await CollectionStore.open(dir);
    await store.create('c', { dimensions: dims });
  });
  afterEach(async () => {
    await store.close();
    await cleanup();
  });

  it('upserts, gets, replaces by id and deletes', async () => {
    const rng = new Rng(1);
    const v1 = randomVector(rng, dims);
    const v2 = randomVector(rng, dims);
    expect(await store.upsert('c', [{ id: 'a', vector: v1, text: 'first', metadata: { n: 1, tags: ['x'] } }])).toEqual({
      inserted: 1,
      replaced: 0,
    });
    const got = store.get('c', 'a')!;
    expect(got.text).toBe('first');
    expect(got.metadata).toEqual({ n: 1, tags: ['x'] });
    expectClose(got.vector, normalized(v1)); // cosine stores the unit vector

    expect(await store.upsert('c', [{ id: 'a', vector: v2, metadata: { n: 2 } }])).toEqual({ inserted: 0, replaced: 1 });
    const replaced = store.get('c', 'a')!;
    expect(replaced.text).toBeUndefined(); // a replace is whole, not a merge
    expect(replaced.metadata).toEqual({ n: 2 });
    expectClose(replaced.vector, normalized(v2));
    expect(store.info('c').count).toBe(1);
    // The old vector is gone from search too: querying it finds the doc with the NEW vector's score.
    const [hit] = store.search('c', v1, { k: 5 });
    expect(hit!.id).toBe('a');
    const expected = normalized(v1).reduce((s, x, i) => s + x * normalized(v2)[i]!, 0);
    expect(hit!.score).toBeCloseTo(expected, 5);

    expect(await store.delete('c', 'a')).toBe(true);
    expect(await store.delete('c', 'a')).toBe(false);
    expect(await store.delete('c', 'never')).toBe(false);
    expect(store.get('c', 'a')).toBeUndefined();
    expect(store.info('c').count).toBe(0);
    expect(store.search('c', v2, { k: 5 })).toEqual([]);
  });

  it('never returns deleted or replaced documents from search', async () => {
    const rng = new Rng(2);
    const docs = Array.from({ length: 300 }, (_, i) => ({ id: `d${i}`, vector: randomVector(rng, dims), metadata: { v: 1 } }));
    await store.upsert('c', docs);
    for (let i = 0; i < 300; i += 2) expect(await store.delete('c', `d${i}`)).toBe(true);
    await store.upsert(
      'c',
      docs.filter((_, i) => i % 2 === 1 && i % 3 === 1).map((d) => ({ ...d, metadata: { v: 2 } })),
    );
    expect(store.info('c').count).toBe(150);
    for (let q = 0; q < 20; q++) {
      const hits = store.search('c', randomVector(rng, dims), { k: 200 });
      expect(hits).toHaveLength(150);
      expect(new Set(hits.map((h) => h.id)).size).toBe(150);
      for (const h of hits) {
        const i = Number(h.id.slice(1));
        expect(i % 2).toBe(1);
        expect(h.metadata).toEqual({ v: i % 3 === 1 ? 2 : 1 });
      }
      for (let j = 1; j < hits.length; j++) expect(hits[j - 1]!.score).toBeGreaterThanOrEqual(hits[j]!.score);
    }
  });

  it('is all or nothing per batch', async () => {
    await store.upsert('c', [{ id: 'keep', vector: new Array(dims).fill(1), metadata: { v: 'old' } }]);
    const good = (id: string) => ({ id, vector: new Array(dims).fill(0.5), metadata: { v: 'new' } });
    const badBatches: unknown[][] = [
      [good('keep'), good('n1'), { id: 'bad', vector: new Array(dims - 1).fill(1) }],
      [good('keep'), good('n1'), { id: 'bad', vector: [...new Array(dims - 1).fill(1), Number.NaN] }],
      [good('keep'), good('n1'), { id: 'bad', vector: [...new Array(dims - 1).fill(1), Infinity] }],
      [good('keep'), good('n1'), { id: 'bad', vector: new Array(dims).fill(0) }], // zero vector under cosine
      [good('keep'), good('n1'), good('n1')], // duplicate id within the call
      [good('keep'), { id: '', vector: new Array(dims).fill(1) }],
      [good('keep'), { id: 'x'.repeat(257), vector: new Array(dims).fill(1) }],
      [good('keep'), { id: 'm', vector: new Array(dims).fill(1), metadata: [1, 2] }],
      [good('keep'), { id: 'm', vector: new Array(dims).fill(1), metadata: { when: new Date() } }],
      [good('keep'), { id: 'm', vector: new Array(dims).fill(1), metadata: { x: Number.NaN } }],
      [good('keep'), { id: 'm', vector: new Array(dims).fill(1), text: 5 }],
      [good('keep'), { id: 'm', vector: new Array(dims).fill(1), extra: 5 }],
      [good('keep'), { id: 'm', vector: '1,2,3' }],
    ];
    for (const batch of badBatches) {
      await expect(store.upsert('c', batch)).rejects.toBeInstanceOf(ValidationError);
      expect(store.info('c').count).toBe(1);
      expect(store.get('c', 'keep')!.metadata).toEqual({ v: 'old' });
      expect(store.get('c', 'n1')).toBeUndefined();
    }
    await expect(store.upsert('c', badBatches[0]!)).rejects.toThrow(/documents\[2\]\.vector has length 15, expected 16/);
  });

  it('copies metadata on the way in and freezes it on the way out', async () => {
    const metadata = { nested: { n: 1 } };
    await store.upsert('c', [{ id: 'a', vector: new Array(dims).fill(1), metadata }]);
    metadata.nested.n = 2;
    const got = store.get('c', 'a')!;
    expect(got.metadata).toEqual({ nested: { n: 1 } });
    expect(() => {
      (got.metadata!.nested as { n: number }).n = 3;
    }).toThrow(TypeError);
  });

  it('accepts Float32Array vectors and k larger than the collection', async () => {
    await store.upsert('c', [
      { id: 'a', vector: new Float32Array(dims).fill(1) },
      { id: 'b', vector: Float32Array.from({ length: dims }, (_, i) => i + 1) },
    ]);
    expect(store.search('c', new Float32Array(dims).fill(1), { k: 100 }).map((h) => h.id)).toEqual(['a', 'b']);
    expect(store.search('c', new Float32Array(dims).fill(1), { k: 1 })).toHaveLength(1);
  });

  it('validates queries and search options', () => {
    expect(() => store.search('c', new Array(dims - 1).fill(1), { k: 1 })).toThrow(ValidationError);
    expect(() => store.search('c', new Array(dims + 1).fill(1), { k: 1 })).toThrow(/length 17, expected 16/);
    expect(() => store.search('c', new Array(dims).fill(0), { k: 1 })).toThrow(ValidationError);
    expect(() => store.search('c', new Array(dims).fill(1), { k: 0 })).toThrow(ValidationError);
    expect(() => store.search('c', new Array(dims).fill(1), { k: 1.5 })).toThrow(ValidationError);
    expect(() => store.search('c', new Array(dims).fill(1), { k: 1, ef: 0 })).toThrow(ValidationError);
    expect(() => store.search('c', new Array(dims).fill(1), { k: 1, include: ['bogus' as 'text'] })).toThrow(ValidationError);
    expect(() => store.get('c', '')).toThrow(ValidationError);
  });

  it('returns what include asks for', async () => {
    const v = Array.from({ length: dims }, (_, i) => (i % 2 ? 1 : -1));
    await store.upsert('c', [{ id: 'a', vector: v, text: 't', metadata: { m: 1 } }]);
    expect(store.search('c', v, { k: 1 })).toEqual([{ id: 'a', score: expect.closeTo(1, 5), text: 't', metadata: { m: 1 } }]);
    expect(store.search('c', v, { k: 1, include: [] })).toEqual([{ id: 'a', score: expect.closeTo(1, 5) }]);
    const [withVec] = store.search('c', v, { k: 1, include: ['vector'] });
    expect(Object.keys(withVec!).sort()).toEqual(['id', 'score', 'vector']);
    expectClose(withVec!.vector!, normalized(v));
  });

  it('groups concurrent writes and keeps their order', async () => {
    const writes = Array.from({ length: 50 }, (_, i) =>
      store.upsert('c', [{ id: `k${i % 10}`, vector: new Array(dims).fill(i + 1), metadata: { i } }]),
    );
    const dels = [store.delete('c', 'k0'), store.delete('c', 'nope')];
    await Promise.all(writes);
    expect(await Promise.all(dels)).toEqual([true, false]);
    expect(store.get('c', 'k0')).toBeUndefined();
    for (let j = 1; j < 10; j++) expect(store.get('c', `k${j}`)!.metadata).toEqual({ i: 40 + j });
  });
});

describe('scores per metric', () => {
  let cleanup: () => Promise<void>;
  let store: CollectionStore;
  beforeEach(async () => {
    let dir: string;
    ({ dir, cleanup } = await makeTempDir());
    store = await CollectionStore.open(dir);
  });
  afterEach(async () => {
    await store.close();
    await cleanup();
  });

  const docs = [
    { id: 'x', vector: [3, 0] },
    { id: 'y', vector: [0, 2] },
    { id: 'z', vector: [1, 1] },
  ];

  it('cosine: similarity of the directions', async () => {
    await store.create('m', { dimensions: 2, metric: 'cosine' });
    await store.upsert('m', docs);
    const hits = store.search('m', [2, 0], { k: 3 });
    expect(hits.map((h) => h.id)).toEqual(['x', 'z', 'y']);
    expectClose(
      hits.map((h) => h.score),
      [1, Math.SQRT1_2, 0],
    );
  });

  it('ip: raw dot product, vectors stored as given', async () => {
    await store.create('m', { dimensions: 2, metric: 'ip' });
    await store.upsert('m', docs);
    const hits = store.search('m', [1, 3], { k: 3 });
    expect(hits.map((h) => h.id)).toEqual(['y', 'z', 'x']);
    expectClose(
      hits.map((h) => h.score),
      [6, 4, 3],
    );
    expectClose(store.get('m', 'x')!.vector, [3, 0]);
  });

  it('l2: negative Euclidean distance, not squared', async () => {
    await store.create('m', { dimensions: 2, metric: 'l2' });
    await store.upsert('m', docs);
    const hits = store.search('m', [3, 4], { k: 3 });
    // distances: x = 4, y = sqrt(9 + 4), z = sqrt(4 + 9)
    expect(hits[0]!.id).not.toBe('x');
    expectClose(
      hits.map((h) => h.score),
      [-Math.sqrt(13), -Math.sqrt(13), -4],
    );
  });
});
