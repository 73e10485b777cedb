import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CollectionStore, fromFloat16, scoreCandidates, toFloat16, VectorStorage } from '../../src/index/index.js';
import { EmbeddingSpace, makeTempDir, Rng } from './helpers.js';

describe('float16 codec', () => {
  it('encodes known values bit-exactly (IEEE 754 binary16)', () => {
    const known: [number, number][] = [
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [0.1, 0x2e66],
      [1 / 3, 0x3555],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [0, 0x0000],
      [-0.5, 0xb800],
    ];
    for (const [x, h] of known) {
      expect(toFloat16(x), String(x)).toBe(h);
      expect(fromFloat16(h)).toBe(Math.fround(x === 0.1 ? 0.0999755859375 : x === 1 / 3 ? 0.333251953125 : x));
    }
  });
});

describe('VectorStorage round-trips within the quantization error', () => {
  const rng = new Rng(7);
  const dims = 96;
  const vectors = Array.from({ length: 300 }, (_, i) => Float32Array.from({ length: dims }, () => rng.gauss() * (i % 3 === 0 ? 0.01 : 3)));

  it.each(['float32', 'float16', 'int8'] as const)('%s', (precision) => {
    const s = new VectorStorage(precision, dims, 4); // small capacity: growth is exercised too
    vectors.forEach((v, i) => s.set(i, v));
    const bytes = Buffer.concat(s.chunks(vectors.length));
    expect(bytes.length).toBe(VectorStorage.fileBytes(precision, dims, vectors.length));
    expect(bytes.length / vectors.length).toBe(s.bytesPerVector);
    const back = VectorStorage.fromBytes(precision, dims, vectors.length, bytes);
    vectors.forEach((v, i) => {
      const got = back.get(i);
      expect(Array.from(got)).toEqual(Array.from(s.get(i)));
      const maxAbs = Math.max(...Array.from(v, Math.abs));
      for (let j = 0; j < dims; j++) {
        const err = Math.abs(got[j]! - v[j]!);
        if (precision === 'float32') expect(err).toBe(0);
        // Half precision: 11 significant bits (relative 2^-11), subnormals below 2^-14 absolute 2^-25.
        else if (precision === 'float16') expect(err).toBeLessThanOrEqual(Math.max(Math.abs(v[j]!) * 2 ** -11, 2 ** -25));
        // int8: half a quantization step, the step being max|x| / 127.
        else expect(err).toBeLessThanOrEqual((maxAbs / 127) * 0.5 * (1 + 1e-6));
      }
    });
  });
});

describe('Matryoshka funnel collection (64-d graph, int8 full vectors)', () => {
  const N = 20_000;
  const DIMS = 384;
  const space = new EmbeddingSpace(11, { dims: DIMS });
  const { vectors } = space.sample(N, 12);
  const queries = space.sample(200, 13).vectors;
  let dir: string;
  let cleanup: () => Promise<void>;
  let store: CollectionStore;

  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir('vecstore-funnel-'));
    store = await CollectionStore.open(dir, { compactMinDeleted: 100 });
    await store.create('f', { dimensions: DIMS, index_dimensions: 64, storage: 'int8' });
    for (let i = 0; i < N; i += 1000) {
      await store.upsert(
        'f',
        vectors.slice(i, i + 1000).map((vector, j) => ({ id: `v${i + j}`, vector })),
      );
    }
  }, 240_000);
  afterAll(async () => {
    await store?.close({ snapshot: false });
    await cleanup();
  });

  const recall = (s: CollectionStore, rescore?: number): number => {
    let found = 0;
    for (const q of queries) {
      const truth = new Set(scoreCandidates(q, vectors, 'cosine', 10).map((h) => `v${h.index}`));
      for (const h of s.search('f', q, { k: 10, include: [], ...(rescore && { rescore }) })) if (truth.has(h.id)) found++;
    }
    return found / (queries.length * 10);
  };

  it('reaches recall@10 >= 0.95 against exact full-width search at the default rescore', () => {
    const r = recall(store);
    console.log(`funnel recall@10 (default rescore) = ${r.toFixed(4)}; rescore 10 = ${recall(store, 10).toFixed(4)}`);
    expect(r).toBeGreaterThanOrEqual(0.95);
    // Scores are full-width cosines from the int8 vectors: close to the exact ones.
    const [top] = store.search('f', queries[0]!, { k: 1, include: ['vector'] });
    const exact = scoreCandidates(queries[0]!, vectors, 'cosine', 1)[0]!;
    expect(top!.id).toBe(`v${exact.index}`);
    expect(top!.score).toBeCloseTo(exact.score, 2);
    expect(top!.vector).toHaveLength(DIMS);
  }, 120_000);

  it('returns full vectors within int8 error, identical after restarts and compaction', async () => {
    const before = ['v0', 'v1234', 'v19999'].map((id) => store.get('f', id)!.vector);
    before.forEach((v, i) => {
      const orig = vectors[[0, 1234, 19999][i]!]!;
      const step = Math.max(...Array.from(orig, Math.abs)) / 127;
      v.forEach((x, j) => expect(Math.abs(x - orig[j]!)).toBeLessThanOrEqual(step / 2 + 1e-6));
    });
    await store.close({ snapshot: false }); // recover from the log alone
    store = await CollectionStore.open(dir, { compactMinDeleted: 100 });
    expect(['v0', 'v1234', 'v19999'].map((id) => store.get('f', id)!.vector)).toEqual(before);
    // Delete most documents so the snapshot compacts (renumbers labels and rebuilds storage).
    for (let i = 2000; i < N; i += 1000) {
      const batch: Promise<boolean>[] = [];
      for (let j = i; j < i + 1000; j++) if (j !== 19999) batch.push(store.delete('f', `v${j}`)); // concurrent: shared fsyncs
      await Promise.all(batch);
    }
    await store.snapshot();
    await store.close();
    store = await CollectionStore.open(dir, { compactMinDeleted: 100 });
    expect(store.info('f').count).toBe(2001);
    expect(['v0', 'v1234', 'v19999'].map((id) => store.get('f', id)!.vector)).toEqual(before);
    const [hit] = store.search('f', vectors[19999]!, { k: 1, include: [] });
    expect(hit!.id).toBe('v19999');
  }, 240_000);
});

describe('funnel settings', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let store: CollectionStore;
  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir('vecstore-funnel-settings-'));
    store = await CollectionStore.open(dir);
  });
  afterAll(async () => {
    await store.close();
    await cleanup();
  });

  it('are checked at creation and fixed for life', async () => {
    await expect(store.create('a', { dimensions: 8, storage: 'int8' })).rejects.toThrow(/only with settings.index_dimensions/);
    await expect(store.create('a', { dimensions: 8, index_dimensions: 9 })).rejects.toThrow(/index_dimensions/);
    await expect(store.create('a', { dimensions: 8, index_dimensions: 4, storage: 'int4' })).rejects.toThrow(/storage/);
    const { settings } = await store.create('a', { dimensions: 8, index_dimensions: 4 });
    expect(settings).toMatchObject({ index_dimensions: 4, storage: 'float32' });
    await expect(store.create('a', { dimensions: 8, index_dimensions: 4, storage: 'float16' })).rejects.toThrow(/different settings/);
  });

  it('refuses vectors that float16 cannot hold', async () => {
    await store.create('h', { dimensions: 4, metric: 'ip', index_dimensions: 2, storage: 'float16' });
    await expect(store.upsert('h', [{ id: 'x', vector: [1, 2, 70000, 4] }])).rejects.toThrow(/float16/);
    expect(store.info('h').count).toBe(0);
    await store.upsert('h', [{ id: 'y', vector: [1, 2, 60000, 4] }]);
    expect(store.get('h', 'y')!.vector).toEqual([1, 2, 60000, 4]);
  });
});
