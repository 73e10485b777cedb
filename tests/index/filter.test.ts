import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CollectionStore, compileFilter, type Filter, scoreCandidates, ValidationError } from '../../src/index/index.js';
import { EmbeddingSpace, makeTempDir } from './helpers.js';

describe('compileFilter', () => {
  const md = {
    city: 'Oslo',
    n: 5,
    flag: true,
    tags: ['a', 'b'],
    scores: [1, 10],
    nested: { deep: { x: 3 }, label: 'L' },
    items: [
      { kind: 'book', price: 12 },
      { kind: 'pen', price: 2 },
    ],
  };
  const m = (f: Filter) => compileFilter(f)!(md);

  it('matches values, strictly typed', () => {
    expect(m({ must: [{ key: 'city', match: { value: 'Oslo' } }] })).toBe(true);
    expect(m({ must: [{ key: 'city', match: { value: 'oslo' } }] })).toBe(false);
    expect(m({ must: [{ key: 'n', match: { value: 5 } }] })).toBe(true);
    expect(m({ must: [{ key: 'n', match: { value: '5' } }] })).toBe(false);
    expect(m({ must: [{ key: 'flag', match: { value: true } }] })).toBe(true);
    expect(m({ must: [{ key: 'missing', match: { value: true } }] })).toBe(false);
  });

  it('matches any element of an array', () => {
    expect(m({ must: [{ key: 'tags', match: { value: 'b' } }] })).toBe(true);
    expect(m({ must: [{ key: 'tags', match: { value: 'c' } }] })).toBe(false);
    expect(m({ must: [{ key: 'scores', range: { gt: 9 } }] })).toBe(true);
    expect(m({ must: [{ key: 'scores', range: { gt: 10 } }] })).toBe(false);
  });

  it('follows dotted keys, through arrays of objects too', () => {
    expect(m({ must: [{ key: 'nested.deep.x', match: { value: 3 } }] })).toBe(true);
    expect(m({ must: [{ key: 'nested.label', match: { value: 'L' } }] })).toBe(true);
    expect(m({ must: [{ key: 'nested.deep', match: { value: 3 } }] })).toBe(false);
    expect(m({ must: [{ key: 'nested.nope.x', match: { value: 3 } }] })).toBe(false);
    expect(m({ must: [{ key: 'items.kind', match: { value: 'pen' } }] })).toBe(true);
    expect(m({ must: [{ key: 'items.price', range: { gte: 12, lte: 12 } }] })).toBe(true);
    expect(m({ must: [{ key: 'city.length', range: { gt: 0 } }] })).toBe(false); // no prototype lookups
  });

  it('combines range bounds and conditions', () => {
    expect(m({ must: [{ key: 'n', range: { gt: 4, lt: 6 } }] })).toBe(true);
    expect(m({ must: [{ key: 'n', range: { gt: 5 } }] })).toBe(false);
    expect(m({ must: [{ key: 'n', range: { gte: 5 } }] })).toBe(true);
    expect(m({ must: [{ key: 'n', range: { lt: 5 } }] })).toBe(false);
    expect(m({ must: [{ key: 'n', range: { lte: 5 } }] })).toBe(true);
    expect(m({ must: [{ key: 'city', range: { gte: 0 } }] })).toBe(false); // ranges only see numbers
    expect(
      m({
        must: [
          { key: 'n', match: { value: 5 } },
          { key: 'city', match: { value: 'Oslo' } },
        ],
      }),
    ).toBe(true);
    expect(
      m({
        must: [
          { key: 'n', match: { value: 5 } },
          { key: 'city', match: { value: 'Rome' } },
        ],
      }),
    ).toBe(false);
  });

  it('excludes on any must_not condition; a missing field excludes nothing', () => {
    expect(m({ must_not: [{ key: 'city', match: { value: 'Rome' } }] })).toBe(true);
    expect(m({ must_not: [{ key: 'city', match: { value: 'Oslo' } }] })).toBe(false);
    expect(m({ must_not: [{ key: 'missing', match: { value: 1 } }] })).toBe(true);
    expect(
      m({
        must_not: [
          { key: 'a', match: { value: 1 } },
          { key: 'tags', match: { value: 'a' } },
        ],
      }),
    ).toBe(false);
    expect(m({ must: [{ key: 'n', range: { gte: 1 } }], must_not: [{ key: 'tags', match: { value: 'z' } }] })).toBe(true);
    expect(compileFilter({ must: [{ key: 'flag', match: { value: true } }] })!(undefined)).toBe(false);
    expect(compileFilter({ must_not: [{ key: 'flag', match: { value: true } }] })!(undefined)).toBe(true);
  });

  it('treats absent or empty filters as no filter', () => {
    expect(compileFilter(undefined)).toBeUndefined();
    expect(compileFilter({})).toBeUndefined();
    expect(compileFilter({ must: [], must_not: [] })).toBeUndefined();
  });

  it('rejects malformed filters with a message saying what is wrong', () => {
    const bad: [unknown, RegExp][] = [
      ['x', /must be an object/],
      [{ should: [] }, /unsupported field "should"/],
      [{ must: {} }, /must: must be an array/],
      [{ must: [null] }, /must\[0\]: condition must be an object/],
      [{ must: [{ match: { value: 1 } }] }, /key must be a non-empty string/],
      [{ must: [{ key: '', match: { value: 1 } }] }, /key must be a non-empty string/],
      [{ must: [{ key: 'a..b', match: { value: 1 } }] }, /empty path segment/],
      [{ must: [{ key: 'a' }] }, /exactly one of match or range/],
      [{ must: [{ key: 'a', match: { value: 1 }, range: { gt: 1 } }] }, /exactly one of match or range/],
      [{ must: [{ key: 'a', match: { value: null } }] }, /match\.value: must be a string/],
      [{ must: [{ key: 'a', match: { value: { x: 1 } } }] }, /match\.value/],
      [{ must: [{ key: 'a', match: { values: [1] } }] }, /match: must be \{ value/],
      [{ must: [{ key: 'a', range: {} }] }, /at least one of gt/],
      [{ must: [{ key: 'a', range: { gt: '1' } }] }, /range\.gt: must be a finite number/],
      [{ must: [{ key: 'a', range: { between: [1, 2] } }] }, /unknown operator "between"/],
      [{ must_not: [{ key: 'a', matches: { value: 1 } }] }, /must_not\[0\]: unknown field "matches"/],
    ];
    for (const [f, msg] of bad) {
      expect(() => compileFilter(f)).toThrow(ValidationError);
      expect(() => compileFilter(f)).toThrow(msg);
    }
  });
});

describe('filtered search', () => {
  const dims = 32;
  const n = 4000;
  const space = new EmbeddingSpace(11, { dims, latent: 8, clusters: 20 });
  const { vectors, clusters } = space.sample(n, 1);
  const metadataOf = (i: number) => ({
    cluster: clusters[i]!,
    i,
    rare: i % 50 === 0, // 2 %
    group: { name: `g${i % 5}`, rank: i % 100 },
    tags: [`t${i % 3}`, `u${i % 7}`],
  });
  let store: CollectionStore;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    let dir: string;
    ({ dir, cleanup } = await makeTempDir());
    store = await CollectionStore.open(dir);
    await store.create('f', { dimensions: dims });
    const docs = vectors.map((vector, i) => ({ id: String(i), vector, metadata: metadataOf(i) }));
    for (let i = 0; i < n; i += 500) await store.upsert('f', docs.slice(i, i + 500));
  });
  afterAll(async () => {
    await store.close();
    await cleanup();
  });

  /** Exact top-k among the documents passing `filter`. */
  function exactFiltered(query: Float32Array, filter: Filter, k: number, alive: (i: number) => boolean = () => true) {
    const pred = compileFilter(filter)!;
    const idx = [...vectors.keys()].filter((i) => alive(i) && pred(metadataOf(i)));
    return scoreCandidates(
      query,
      idx.map((i) => vectors[i]!),
      'cosine',
      k,
    ).map((s) => String(idx[s.index]!));
  }

  const filters: [string, Filter, number][] = [
    ['selective (2 %)', { must: [{ key: 'rare', match: { value: true } }] }, 80],
    ['dotted key', { must: [{ key: 'group.name', match: { value: 'g3' } }] }, 800],
    ['array field', { must: [{ key: 'tags', match: { value: 'u6' } }] }, 571],
    ['range', { must: [{ key: 'group.rank', range: { gte: 10, lt: 13 } }] }, 120],
    [
      'must_not',
      {
        must_not: [
          { key: 'group.name', match: { value: 'g0' } },
          { key: 'tags', match: { value: 't1' } },
        ],
      },
      2133,
    ],
    ['must + must_not', { must: [{ key: 'rare', match: { value: true } }], must_not: [{ key: 'tags', match: { value: 't0' } }] }, 53],
  ];

  it.each(filters)('%s: only matching documents, k of them, near the exact answer', (_name, filter, matching) => {
    const pred = compileFilter(filter)!;
    expect(vectors.filter((_, i) => pred(metadataOf(i))).length).toBe(matching);
    const queries = space.sample(20, 2).vectors;
    let overlap = 0;
    for (const q of queries) {
      const hits = store.search('f', q, { k: 10, filter });
      expect(hits).toHaveLength(10);
      for (const h of hits) expect(pred(h.metadata)).toBe(true);
      const exact = new Set(exactFiltered(q, filter, 10));
      overlap += hits.filter((h) => exact.has(h.id)).length;
    }
    expect(overlap / (10 * queries.length)).toBeGreaterThanOrEqual(0.95);
  });

  it('returns every match when fewer than k exist, and none when nothing matches', () => {
    const q = space.sample(1, 3).vectors[0]!;
    const seven: Filter = { must: [{ key: 'i', range: { gte: 100, lt: 107 } }] };
    const hits = store.search('f', q, { k: 10, filter: seven });
    expect(hits.map((h) => h.id).sort()).toEqual(['100', '101', '102', '103', '104', '105', '106']);
    expect(hits.map((h) => h.id)).toEqual(exactFiltered(q, seven, 10));
    expect(store.search('f', q, { k: 10, filter: { must: [{ key: 'cluster', match: { value: 'nope' } }] } })).toEqual([]);
  });

  it('finds matches in the region farthest from the query', () => {
    // Query near one cluster, filter to the documents of another one.
    const q = vectors[0]!;
    const far = (clusters[0]! + 7) % 20;
    const filter: Filter = {
      must: [
        { key: 'cluster', match: { value: far } },
        { key: 'rare', match: { value: true } },
      ],
    };
    const expected = exactFiltered(q, filter, 50);
    expect(expected.length).toBeGreaterThan(0);
    expect(store.search('f', q, { k: 50, filter }).map((h) => h.id)).toEqual(expected);
  });

  it('rejects a malformed filter as a ValidationError', () => {
    const q = vectors[0]!;
    expect(() => store.search('f', q, { k: 1, filter: { must: [{ key: 'x' }] } as unknown as Filter })).toThrow(ValidationError);
  });

  it('still returns every match when parts of the graph are unreachable', async () => {
    // Many exact duplicates at m=2 leave hnswlib graphs with elements no walk
    // from the entry point reaches (hnswlib alone returns a dozen of 2000 here).
    const { dir, cleanup: c2 } = await makeTempDir();
    const s = await CollectionStore.open(dir);
    try {
      await s.create('u', { dimensions: 2, metric: 'l2', hnsw: { m: 2, ef_construction: 4 } });
      const points = Array.from({ length: 40 }, (_, j) => [Math.cos(j), Math.sin(j * 1.7)]);
      await s.upsert(
        'u',
        Array.from({ length: 2000 }, (_, i) => ({ id: String(i), vector: points[i % 40]!, metadata: { i } })),
      );
      const q = [0.3, -0.2];
      const all = s.search('u', q, { k: 5000, include: [] });
      expect(all).toHaveLength(2000);
      const exactScores = Array.from({ length: 2000 }, (_, i) => -Math.hypot(points[i % 40]![0]! - 0.3, points[i % 40]![1]! + 0.2)).sort(
        (a, b) => b - a,
      );
      all.forEach((h, j) => expect(h.score).toBeCloseTo(exactScores[j]!, 5));
      const filter: Filter = { must: [{ key: 'i', range: { lt: 1500 } }], must_not: [{ key: 'i', range: { gte: 100, lt: 200 } }] };
      const some = s.search('u', q, { k: 1500, filter });
      expect(some).toHaveLength(1400);
      expect(some.every((h) => Number(h.id) < 100 || (Number(h.id) >= 200 && Number(h.id) < 1500))).toBe(true);
    } finally {
      await s.close({ snapshot: false });
      await c2();
    }
  });

  it('still returns k results when most of the graph is deleted', async () => {
    const { dir, cleanup: c2 } = await makeTempDir();
    const s = await CollectionStore.open(dir);
    try {
      await s.create('d', { dimensions: dims, hnsw: { m: 4, ef_construction: 16 } });
      await s.upsert(
        'd',
        vectors.slice(0, 2000).map((vector, i) => ({ id: String(i), vector, metadata: metadataOf(i) })),
      );
      const alive = (i: number) => i % 40 === 0;
      for (let i = 0; i < 2000; i++) if (!alive(i)) await s.delete('d', String(i));
      expect(s.info('d').count).toBe(50);
      for (const q of space.sample(10, 4).vectors) {
        const hits = s.search('d', q, { k: 30, ef: 1 });
        expect(hits).toHaveLength(30);
        expect(hits.every((h) => alive(Number(h.id)))).toBe(true);
        const filter: Filter = { must: [{ key: 'tags', match: { value: 't0' } }] };
        const exact = exactFiltered(q, filter, 30, (i) => i < 2000 && alive(i));
        expect(s.search('d', q, { k: 30, ef: 1, filter }).map((h) => h.id)).toEqual(exact);
      }
    } finally {
      await s.close({ snapshot: false });
      await c2();
    }
  });
});
