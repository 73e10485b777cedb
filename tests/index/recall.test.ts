import { afterAll, beforeAll, expect, it } from 'vitest';
import { CollectionStore, scoreCandidates } from '../../src/index/index.js';
import { EmbeddingSpace, makeTempDir } from './helpers.js';

/*
 * Recall@10 of the durable store at default settings (cosine, m=16,
 * ef_construction=200, default query ef) against exact search, on 20k
 * 384-d vectors shaped like sentence embeddings. On the 2-core dev box the
 * build through the store takes ~10 s and the brute-force truth ~5 s.
 */

const N = 20_000;
const QUERIES = 200;
const K = 10;

const space = new EmbeddingSpace(20240611);
const { vectors } = space.sample(N, 1);
const queries = space.sample(QUERIES, 2).vectors;

let store: CollectionStore;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  let dir: string;
  ({ dir, cleanup } = await makeTempDir());
  store = await CollectionStore.open(dir);
  await store.create('emb', { dimensions: 384 });
  for (let i = 0; i < N; i += 1000) {
    await store.upsert(
      'emb',
      vectors.slice(i, i + 1000).map((vector, j) => ({ id: `v${i + j}`, vector })),
    );
  }
}, 120_000);

afterAll(async () => {
  await store.close({ snapshot: false });
  await cleanup();
});

it('recall@10 >= 0.98 against brute force at default settings, with exact scores', () => {
  let found = 0;
  let maxScoreError = 0;
  for (const q of queries) {
    const truth = scoreCandidates(q, vectors, 'cosine', K);
    const truthIds = new Set(truth.map((t) => `v${t.index}`));
    const hits = store.search('emb', q, { k: K, include: [] });
    expect(hits).toHaveLength(K);
    for (const h of hits) {
      if (truthIds.has(h.id)) found++;
      const exact = scoreCandidates(q, [vectors[Number(h.id.slice(1))]!], 'cosine', 1)[0]!.score;
      maxScoreError = Math.max(maxScoreError, Math.abs(exact - h.score));
    }
  }
  const recall = found / (QUERIES * K);
  console.log(`recall@10 = ${recall.toFixed(4)}, max |score - exact| = ${maxScoreError.toExponential(2)}`);
  expect(recall).toBeGreaterThanOrEqual(0.98);
  expect(maxScoreError).toBeLessThan(1e-5);
}, 60_000);
