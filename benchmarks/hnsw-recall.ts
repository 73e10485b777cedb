/**
 * HNSW recall / latency / insert-rate benchmark.
 *
 *   npx tsx benchmarks/hnsw-recall.ts [--n 20000] [--queries 200] [--dims 384]
 *
 * For two distributions (embedding-shaped: a 16-d Gaussian mixture mapped to
 * `dims`, plus noise, normalized; and uniformly random unit vectors, the worst
 * case) it measures, at the store's default build settings (cosine, m=16,
 * ef_construction=200):
 *  - recall@10 against exact brute force and search latency p50/p99 for
 *    ef ∈ {16, 32, 64, 128, 256, 512};
 *  - insert rate, for the raw in-memory hnswlib index and through the durable
 *    CollectionStore (upserts of 256 vectors, each one fsynced before the next).
 * Prints a markdown table.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import hnswlib from 'hnswlib-node';
import { CollectionStore, DEFAULT_EF, scoreCandidates } from '../src/index/index.js';
import { EmbeddingSpace, uniformUnitVectors } from '../tests/index/helpers.js';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

const N = arg('n', 20_000);
const QUERIES = arg('queries', 200);
const DIMS = arg('dims', 384);
const K = 10;
const EFS = [16, 32, 64, 128, 256, 512];
const M = 16;
const EF_CONSTRUCTION = 200;
const BATCH = 256;

interface Row {
  dataset: string;
  path: string;
  insertRate: number;
  ef: number;
  recall: number;
  p50: number;
  p99: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

function measure(
  queries: Float32Array[],
  truth: Set<number>[],
  search: (q: Float32Array, ef: number) => number[],
): { ef: number; recall: number; p50: number; p99: number }[] {
  return EFS.map((ef) => {
    for (const q of queries.slice(0, 10)) search(q, ef); // warm-up
    const times: number[] = [];
    let found = 0;
    queries.forEach((q, i) => {
      const t0 = performance.now();
      const ids = search(q, ef);
      times.push(performance.now() - t0);
      for (const id of ids) if (truth[i]!.has(id)) found++;
    });
    times.sort((a, b) => a - b);
    return { ef, recall: found / (queries.length * K), p50: percentile(times, 0.5), p99: percentile(times, 0.99) };
  });
}

async function runDataset(name: string, vectors: Float32Array[], queries: Float32Array[]): Promise<Row[]> {
  const rows: Row[] = [];
  let t = performance.now();
  const truth = queries.map((q) => new Set(scoreCandidates(q, vectors, 'cosine', K).map((s) => s.index)));
  console.error(`[${name}] brute-force truth: ${((performance.now() - t) / 1000).toFixed(1)} s`);

  // Raw hnswlib, vectors already unit length, inner-product space (what the store uses for cosine).
  const raw = new hnswlib.HierarchicalNSW('ip', DIMS);
  raw.initIndex(vectors.length, M, EF_CONSTRUCTION, 100, false);
  t = performance.now();
  vectors.forEach((v, i) => raw.addPoint(Array.from(v), i));
  const rawRate = vectors.length / ((performance.now() - t) / 1000);
  console.error(`[${name}] raw build: ${((performance.now() - t) / 1000).toFixed(1)} s`);
  for (const r of measure(queries, truth, (q, ef) => {
    raw.setEf(ef);
    return raw.searchKnn(Array.from(q), K).neighbors;
  })) {
    rows.push({ dataset: name, path: 'raw hnswlib', insertRate: rawRate, ...r });
  }

  // The durable store: every upsert call is logged and fsynced before it resolves.
  const dir = await mkdtemp(path.join(tmpdir(), 'hnsw-bench-'));
  try {
    const store = await CollectionStore.open(dir, { snapshotEvery: { records: 1e9, bytes: 1e15, seconds: 0 } });
    await store.create('bench', { dimensions: DIMS, metric: 'cosine', hnsw: { m: M, ef_construction: EF_CONSTRUCTION } });
    t = performance.now();
    for (let i = 0; i < vectors.length; i += BATCH) {
      await store.upsert(
        'bench',
        vectors.slice(i, i + BATCH).map((vector, j) => ({ id: String(i + j), vector })),
      );
    }
    const storeRate = vectors.length / ((performance.now() - t) / 1000);
    console.error(`[${name}] store build: ${((performance.now() - t) / 1000).toFixed(1)} s`);
    for (const r of measure(queries, truth, (q, ef) => store.search('bench', q, { k: K, ef, include: [] }).map((h) => Number(h.id)))) {
      rows.push({ dataset: name, path: 'durable store', insertRate: storeRate, ...r });
    }
    t = performance.now();
    await store.close(); // includes the final snapshot
    console.error(`[${name}] snapshot on close: ${((performance.now() - t) / 1000).toFixed(1)} s`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}

const space = new EmbeddingSpace(20240611, { dims: DIMS });
const datasets: [string, Float32Array[], Float32Array[]][] = [
  ['embedding-like', space.sample(N, 1).vectors, space.sample(QUERIES, 2).vectors],
  ['uniform random', uniformUnitVectors(N, DIMS, 1), uniformUnitVectors(QUERIES, DIMS, 2)],
];

const rows: Row[] = [];
for (const [name, vectors, queries] of datasets) rows.push(...(await runDataset(name, vectors, queries)));

const cpu = cpus()[0]?.model ?? 'unknown CPU';
console.log(
  `HNSW recall@${K}, N=${N}, ${DIMS}-d, ${QUERIES} queries, cosine, m=${M}, ef_construction=${EF_CONSTRUCTION}` +
    ` (store default query ef: max(k, ${DEFAULT_EF})); Node ${process.version}, ${cpus().length}× ${cpu}\n`,
);
console.log('| dataset | path | insert (vec/s) | ef | recall@10 | p50 (ms) | p99 (ms) |');
console.log('|---|---|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(
    `| ${r.dataset} | ${r.path} | ${Math.round(r.insertRate)} | ${r.ef} | ${r.recall.toFixed(4)} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} |`,
  );
}
