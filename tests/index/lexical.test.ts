import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CollectionStore, fuse, LexicalIndex, tokenize } from '../../src/index/index.js';
import { makeTempDir } from './helpers.js';

describe('tokenize', () => {
  it('splits Unicode words, lowercases them and drops punctuation', () => {
    expect(tokenize('The CAT, the hat!')).toEqual(['the', 'cat', 'the', 'hat']);
    expect(tokenize('Straße ÜBER Éclair — naïve')).toEqual(['straße', 'über', 'éclair', 'naïve']);
    // NFKC: full-width letters and ligatures become their plain forms.
    expect(tokenize('ＡＢＣ ﬁle')).toEqual(['abc', 'file']);
    expect(tokenize('Ελληνικά Кириллица 123')).toEqual(['ελληνικά', 'кириллица', '123']);
    expect(tokenize('  ... !!! ')).toEqual([]);
  });
});

/*
 * A hand computation of Lucene BM25 (k1 0.9, b 0.4) on three documents:
 *   d0 "the cat sat"       length 3
 *   d1 "the cat the cat"   length 4
 *   d2 "a dog"             length 2        N = 3, avgdl = 3
 * query "cat": df = 2, idf = ln(1 + (3 − 2 + 0.5) / (2 + 0.5)) = ln 1.6 = 0.470003629245736
 *   d0: tf 1, norm = 0.9 · (0.6 + 0.4 · 3/3) = 0.9      → 1 · 1.9 / 1.9 = 1           → 0.470003629245736
 *   d1: tf 2, norm = 0.9 · (0.6 + 0.4 · 4/3) = 1.02     → 2 · 1.9 / 3.02 = 1.258278…  → 0.591395…
 * query "dog the": dog df 1, idf = ln(1 + 2.5/1.5) = ln(8/3) = 0.980829253011726
 *   d2: tf 1, norm = 0.9 · (0.6 + 0.4 · 2/3) = 0.78     → 1.9 / 1.78 = 1.067415…       → 1.046952…
 *   the: df 2, idf = ln 1.6; d0: 1 · 1.9/1.9 = 1 → 0.470004; d1: 1.258278 · ln 1.6 = 0.591395
 */
describe('BM25', () => {
  const index = new LexicalIndex({ k1: 0.9, b: 0.4 });
  index.add(0, 'the cat sat');
  index.add(1, 'the cat the cat');
  index.add(2, 'a dog');

  it('matches a hand computation', () => {
    const cat = index.search('cat', 10);
    expect(cat.map((h) => h.label)).toEqual([1, 0]);
    expect(cat[0]!.score).toBeCloseTo((0.470003629245736 * 3.8) / 3.02, 12);
    expect(cat[1]!.score).toBeCloseTo(0.470003629245736, 12);
    const dogThe = index.search('Dog the', 10);
    expect(dogThe.map((h) => h.label)).toEqual([2, 1, 0]);
    expect(dogThe[0]!.score).toBeCloseTo((0.980829253011726 * 1.9) / 1.78, 12);
    expect(dogThe[1]!.score).toBeCloseTo((0.470003629245736 * 3.8) / 3.02, 12);
    expect(index.search('unicorn', 10)).toEqual([]);
  });

  it("uses the collection's k1 and b", () => {
    const flat = new LexicalIndex({ k1: 1.2, b: 0 });
    flat.add(0, 'the cat sat');
    flat.add(1, 'the cat the cat');
    // b = 0: no length normalization; d1 tf 2 → 2 · 2.2 / (2 + 1.2)
    expect(flat.search('cat', 1)[0]!.score).toBeCloseTo((Math.log(1 + 0.5 / 2.5) * 4.4) / 3.2, 12);
  });

  it('forgets removed documents entirely (df, N and avgdl)', () => {
    const i = new LexicalIndex({ k1: 0.9, b: 0.4 });
    i.add(0, 'the cat sat');
    i.add(1, 'the cat the cat');
    i.add(2, 'a dog');
    i.add(3, 'cat cat cat dog');
    i.remove(3, 'cat cat cat dog');
    expect(i.search('dog the', 3)).toEqual(index.search('dog the', 3));
    expect(i.size).toBe(3);
  });
});

/*
 * Fusion by hand. dense: a 0.9, b 0.8, c 0.5; lexical: c 7, d 3.
 * RRF k 60: a 1/61, b 1/62, c 1/63 + 1/61, d 1/62 → c, a, b, d (b before d: dense list first).
 * weighted alpha 0.3: dense normalized a 1, b 0.75, c 0; lexical c 1, d 0
 *   a 0.3, b 0.225, c 0.7, d 0 → c, a, b, d
 */
describe('fusion', () => {
  const dense = [
    { key: 'a', score: 0.9 },
    { key: 'b', score: 0.8 },
    { key: 'c', score: 0.5 },
  ];
  const lexical = [
    { key: 'c', score: 7 },
    { key: 'd', score: 3 },
  ];

  it('rrf matches a hand computation', () => {
    const out = fuse(dense, lexical, { method: 'rrf', k: 60 });
    expect(out.map((h) => h.key)).toEqual(['c', 'a', 'b', 'd']);
    expect(out[0]).toEqual({ key: 'c', score: 1 / 63 + 1 / 61, dense_score: 0.5, lexical_score: 7 });
    expect(out[1]).toEqual({ key: 'a', score: 1 / 61, dense_score: 0.9 });
    expect(out[3]).toEqual({ key: 'd', score: 1 / 62, lexical_score: 3 });
    expect(fuse(dense, lexical, { method: 'rrf', k: 0 })[0]!.score).toBeCloseTo(1 / 3 + 1, 15);
  });

  it('weighted matches a hand computation', () => {
    const out = fuse(dense, lexical, { method: 'weighted', alpha: 0.3 });
    expect(out.map((h) => [h.key, h.score])).toEqual([
      ['c', 0.7],
      ['a', 0.3],
      ['b', expect.closeTo(0.225, 12)],
      ['d', 0],
    ]);
    // alpha 1: the dense order, lexical-only hits last.
    expect(fuse(dense, lexical, { method: 'weighted', alpha: 1 }).map((h) => h.key)).toEqual(['a', 'b', 'c', 'd']);
    // A one-element list normalizes to 1.
    expect(fuse([{ key: 'x', score: 0.2 }], [], { method: 'weighted', alpha: 0.5 })).toEqual([{ key: 'x', score: 0.5, dense_score: 0.2 }]);
  });
});

describe('lexical and hybrid search in a collection', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let store: CollectionStore;
  // 2-d vectors so the dense order is obvious: similarity to [1, 0] falls with the angle.
  const at = (deg: number): number[] => [Math.cos((deg * Math.PI) / 180), Math.sin((deg * Math.PI) / 180)];
  const docs = [
    { id: 'd0', vector: at(0), text: 'the cat sat', metadata: { lang: 'en' } },
    { id: 'd1', vector: at(10), text: 'the cat the cat', metadata: { lang: 'de' } },
    { id: 'd2', vector: at(20), text: 'a dog', metadata: { lang: 'en' } },
    { id: 'd3', vector: at(80), text: 'nothing matches here', metadata: { lang: 'en' } },
  ];

  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir('vecstore-lexical-'));
    store = await CollectionStore.open(dir);
    await store.create('c', { dimensions: 2, lexical: true });
    await store.upsert('c', docs);
  });
  afterEach(async () => {
    await store.close();
    await cleanup();
  });

  const reference = (): LexicalIndex => {
    const r = new LexicalIndex({ k1: 0.9, b: 0.4 });
    docs.forEach((d, i) => r.add(i, d.text));
    return r;
  };

  it('lexical mode scores like BM25 by hand and honours filters, offset and score_threshold', () => {
    const hits = store.search('c', undefined, { k: 10, mode: 'lexical', text: 'cat', include: [] });
    expect(hits.map((h) => [h.id, h.score])).toEqual(
      reference()
        .search('cat', 10)
        .map((h) => [`d${h.label}`, h.score]),
    );
    expect(hits[0]!.lexical_score).toBe(hits[0]!.score);
    expect(
      store
        .search('c', undefined, { k: 10, mode: 'lexical', text: 'cat', filter: { must: [{ key: 'lang', match: { value: 'en' } }] } })
        .map((h) => h.id),
    ).toEqual(['d0']);
    expect(store.search('c', undefined, { k: 1, offset: 1, mode: 'lexical', text: 'cat dog' }).map((h) => h.id)).toEqual(
      [reference().search('cat dog', 3)[1]!.label].map((l) => `d${l}`),
    );
    expect(store.search('c', undefined, { k: 10, mode: 'lexical', text: 'cat', score_threshold: 0.8 }).map((h) => h.id)).toEqual(['d1']);
  });

  it('hybrid fuses the dense and lexical lists (rrf by default) and reports both scores', () => {
    const rrf = store.search('c', at(0), { k: 4, mode: 'hybrid', text: 'dog', include: [] });
    // dense: d0, d1, d2, d3; lexical: d2. rrf: d2 = 1/63 + 1/61, d0 = 1/61, d1 = 1/62, d3 = 1/64
    expect(rrf.map((h) => h.id)).toEqual(['d2', 'd0', 'd1', 'd3']);
    expect(rrf[0]!.score).toBeCloseTo(1 / 63 + 1 / 61, 14);
    expect(rrf[0]!.dense_score).toBeCloseTo(Math.cos((20 * Math.PI) / 180), 6);
    expect(rrf[0]!.lexical_score).toBeCloseTo(reference().search('dog', 1)[0]!.score, 12);
    expect(rrf[1]).toMatchObject({ id: 'd0', dense_score: expect.closeTo(1, 6) });
    expect(rrf[1]!.lexical_score).toBeUndefined();
    // weighted alpha 0.9: dense min-max over [cos 80°, 1]; d2 gets 0.9 · norm(20°) + 0.1 · 1 = 0.934 > d0's 0.9
    // (N = 4, avgdl = 3 in this collection: BM25 of "cat" is 0.693 for d0 and 0.872 for d1)
    const w = store.search('c', at(0), { k: 4, mode: 'hybrid', text: 'dog', fusion: { method: 'weighted', alpha: 0.9 } });
    const c = (deg: number): number => Math.cos((deg * Math.PI) / 180);
    const norm = (deg: number): number => (c(deg) - c(80)) / (1 - c(80));
    expect(w.map((h) => h.id)).toEqual(['d2', 'd0', 'd1', 'd3']);
    expect(w[0]!.score).toBeCloseTo(0.9 * norm(20) + 0.1, 6);
    expect(w[1]!.score).toBeCloseTo(0.9, 6);
    expect(w[2]!.score).toBeCloseTo(0.9 * norm(10), 6);
    expect(store.search('c', at(0), { k: 4, mode: 'hybrid', text: 'dog', score_threshold: 1 / 61 }).map((h) => h.id)).toEqual(['d2', 'd0']);
  });

  it('follows upserts and deletes, and survives restarts (from the log and from a snapshot)', async () => {
    await store.upsert('c', [{ id: 'd2', vector: at(20), text: 'a cat' }]);
    await store.delete('c', 'd1');
    const expectState = (s: CollectionStore): void => {
      expect(s.search('c', undefined, { k: 10, mode: 'lexical', text: 'dog' })).toEqual([]);
      const r = new LexicalIndex({ k1: 0.9, b: 0.4 });
      ['the cat sat', 'nothing matches here', 'a cat'].forEach((t, i) => r.add(i, t));
      expect(s.search('c', undefined, { k: 10, mode: 'lexical', text: 'cat', include: [] }).map((h) => [h.id, h.score])).toEqual(
        r.search('cat', 10).map((h) => [['d0', 'd3', 'd2'][h.label], h.score]),
      );
    };
    expectState(store);
    await store.close({ snapshot: false });
    store = await CollectionStore.open(dir);
    expectState(store);
    await store.close(); // writes a snapshot
    store = await CollectionStore.open(dir);
    expectState(store);
  });

  it('refuses lexical modes without a lexical index or without text, and misplaced options', async () => {
    await store.create('plain', { dimensions: 2 });
    await store.upsert('plain', [{ id: 'x', vector: at(0), text: 'cat' }]);
    expect(() => store.search('plain', undefined, { k: 1, mode: 'lexical', text: 'cat' })).toThrow(/lexical index/);
    expect(() => store.search('plain', at(0), { k: 1, mode: 'hybrid', text: 'cat' })).toThrow(/lexical index/);
    expect(() => store.search('c', at(0), { k: 1, mode: 'hybrid' })).toThrow(/needs the query text/);
    expect(() => store.search('c', at(0), { k: 1, fusion: { method: 'rrf' } })).toThrow(/fusion applies/);
    expect(() => store.search('c', at(0), { k: 1, mode: 'hybrid', text: 'x', fusion: { method: 'max' } as never })).toThrow(
      /fusion.method/,
    );
    expect(() => store.search('c', at(0), { k: 1, mode: 'hybrid', text: 'x', fusion: { method: 'weighted', alpha: 2 } })).toThrow(/alpha/);
    expect(() => store.search('c', at(0), { k: 1, rescore: 10 })).toThrow(/index_dimensions/);
    expect(() => store.search('c', at(0), { k: 1, offset: -1 })).toThrow(/offset/);
    expect(() => store.search('c', at(0), { k: 1, score_threshold: Number.NaN })).toThrow(/score_threshold/);
    await expect(store.create('bad', { dimensions: 2, lexical: { k1: -1 } })).rejects.toThrow(/k1/);
    await expect(store.create('bad', { dimensions: 2, lexical: { b: 1.5 } })).rejects.toThrow(/\.b/);
    await expect(store.create('bad', { dimensions: 2, lexical: 'yes' })).rejects.toThrow(/lexical/);
    // Different BM25 parameters are different settings.
    await expect(store.create('c', { dimensions: 2, lexical: { k1: 1.2 } })).rejects.toThrow(/different settings/);
    expect((await store.create('c', { dimensions: 2, lexical: { k1: 0.9, b: 0.4 } })).created).toBe(false);
  });
});
