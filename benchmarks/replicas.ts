/**
 * Replicas over PostgreSQL (`npm run bench:replicas`): a throwaway PostgreSQL cluster (Debian's
 * binaries), the store layer directly for ingest and catch-up, and real service processes behind
 * haproxy for read-your-writes lag and search throughput. Prints each figure with its ratio.
 *
 *   --docs N        documents for the ingest comparison (default 20000)
 *   --catchup N     documents a fresh replica loads at start (default 100000)
 *   --writes N      writes timed for the read-your-writes lag (default 300)
 *   --seconds S     per search-throughput run (default 10)
 *
 * Vectors are random unit vectors of the default model's 256 dimensions, so ingest and search time
 * the store and the index, not the model.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import pgClient from 'pg';
import { CollectionStore, silentLogger } from '../src/index/index.js';
import { decodeVector } from '../src/pgstore/memory.js';
import { PgStore } from '../src/pgstore/pg-store.js';
import { postgresUnavailableReason, startTempCluster } from '../tools/postgres.js';
import { haproxyUnavailableReason, type ReplicaProcess, startHaproxy, startReplica } from '../tools/replica-harness.js';

const { values } = parseArgs({
  options: {
    docs: { type: 'string', default: '20000' },
    catchup: { type: 'string', default: '100000' },
    writes: { type: 'string', default: '300' },
    seconds: { type: 'string', default: '10' },
  },
});
const DOCS = Number(values.docs);
const CATCHUP = Number(values.catchup);
const WRITES = Number(values.writes);
const SECONDS = Number(values.seconds);
const DIMS = 256;
const BATCH = 500;
const MODEL = resolve(import.meta.dirname, '../models/default');

const skip = postgresUnavailableReason() ?? haproxyUnavailableReason();
if (skip) {
  console.error(skip);
  process.exit(0);
}

let seed = 12345;
function rand(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32 - 0.5;
}
function unit(): number[] {
  const v = Array.from({ length: DIMS }, rand);
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}
function batchOf(from: number, n: number): { id: string; vector: number[]; metadata: { n: number } }[] {
  return Array.from({ length: n }, (_, i) => ({ id: `d${from + i}`, vector: unit(), metadata: { n: from + i } }));
}
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

console.log(`CPU: ${cpus()[0]?.model} × ${cpus().length}; Node ${process.version}`);
const cluster = await startTempCluster();
try {
  // ---------------------------------------------------------------- ingest: PostgreSQL vs local
  const url = cluster.createDatabase('bench');
  const { store: pg, ready } = PgStore.open({ url, logger: silentLogger });
  await ready;
  const localDir = mkdtempSync(join(tmpdir(), 'bench-local-'));
  const local = await CollectionStore.open(localDir);
  await pg.create('ingest', { dimensions: DIMS });
  await local.create('ingest', { dimensions: DIMS });
  const batches = Array.from({ length: Math.ceil(DOCS / BATCH) }, (_, b) => batchOf(b * BATCH, Math.min(BATCH, DOCS - b * BATCH)));
  const time = async (f: () => Promise<unknown>): Promise<number> => {
    const t = performance.now();
    await f();
    return (performance.now() - t) / 1000;
  };
  const localS = await time(async () => {
    for (const b of batches) await local.upsert('ingest', b);
  });
  const pgS = await time(async () => {
    for (const b of batches) await pg.upsert('ingest', b);
  });
  // Small writes: one document per call (the prepared-statement path), 500 of them.
  const small = batchOf(10_000_000, 500);
  const localSmallS = await time(async () => {
    for (const d of small) await local.upsert('ingest', [d]);
  });
  const pgSmallS = await time(async () => {
    for (const d of small) await pg.upsert('ingest', [d]);
  });
  console.log(`\n## ingest, ${DOCS} docs in batches of ${BATCH} (store layer, ${DIMS} dims, graph built in both)`);
  console.log(
    `local (WAL + fsync): ${(DOCS / localS).toFixed(0)} docs/s; PostgreSQL (COPY, commit): ${(DOCS / pgS).toFixed(0)} docs/s; PostgreSQL/local ${(localS / pgS).toFixed(2)}`,
  );
  console.log(
    `single-document writes, 500 sequential: local ${(500 / localSmallS).toFixed(0)}/s, PostgreSQL ${(500 / pgSmallS).toFixed(0)}/s; PostgreSQL/local ${(localSmallS / pgSmallS).toFixed(2)}`,
  );
  await local.close();
  rmSync(localDir, { recursive: true, force: true });

  // ---------------------------------------------------------------- catch-up of a fresh replica
  await pg.create('catchup', { dimensions: DIMS });
  for (let from = 0; from < CATCHUP; from += 2000) await pg.upsert('catchup', batchOf(from, Math.min(2000, CATCHUP - from)));
  await pg.drop('ingest');
  await pg.close();
  const t0 = performance.now();
  const fresh = PgStore.open({ url, logger: silentLogger });
  await fresh.ready;
  const catchupS = (performance.now() - t0) / 1000;
  const rss = process.memoryUsage().rss;
  await fresh.store.close();
  // Reading the same rows without building anything: the share of catch-up that is PostgreSQL's.
  const reader = new pgClient.Client({ connectionString: url });
  await reader.connect();
  const readS = await time(async () => {
    let after = ['0', 0];
    for (;;) {
      const page = await reader.query<{ vector: Buffer; seq: string; ord: number }>(
        "SELECT id, text, metadata::text AS metadata, vector, seq, ord FROM documents WHERE collection = 'catchup' AND (seq, ord) > ($1, $2) ORDER BY seq, ord LIMIT 2000",
        after,
      );
      for (const r of page.rows) decodeVector(r.vector, DIMS);
      if (page.rows.length < 2000) break;
      const last = page.rows[page.rows.length - 1]!;
      after = [last.seq, last.ord];
    }
  });
  await reader.end();
  console.log(
    `\n## catch-up: a fresh replica loads ${CATCHUP} docs (${DIMS} dims) from PostgreSQL and builds its graph (m 16, ef_construction 200)`,
  );
  console.log(
    `ready after ${catchupS.toFixed(1)} s (${(CATCHUP / catchupS).toFixed(0)} docs/s); reading and decoding the rows alone: ${readS.toFixed(1)} s (${((readS / catchupS) * 100).toFixed(0)}% of it; the rest is building the HNSW graph); process RSS after load ${(rss / 2 ** 20).toFixed(0)} MiB`,
  );

  // ---------------------------------------------------------------- read-your-writes lag across replicas
  const env = { WORKERS: '1', MAX_EVENT_LOOP_DELAY_MS: '0' };
  const [r1, r2] = await Promise.all([
    startReplica({ storeUrl: url, modelDir: MODEL, env, nice: 0 }),
    startReplica({ storeUrl: url, modelDir: MODEL, env, nice: 0 }),
  ]);
  const replicas: ReplicaProcess[] = [r1, r2];
  try {
    await Promise.all([r1.ready(300_000), r2.ready(300_000)]);
    const post = (u: string, body: unknown, headers: Record<string, string> = {}) =>
      fetch(u, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    await fetch(`${r1.url}/collections/lag`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ dimensions: DIMS }),
    });
    const lags: number[] = [];
    const plain: number[] = [];
    for (let i = 0; i < WRITES; i++) {
      const doc = batchOf(20_000_000 + i, 1)[0]!;
      const w = await post(`${r1.url}/collections/lag/documents`, { documents: [doc] });
      const seq = w.headers.get('x-store-seq')!;
      await w.text();
      const t = performance.now();
      const g = await fetch(`${r2.url}/collections/lag/documents/${doc.id}`, { headers: { 'x-min-store-seq': seq } });
      if (g.status !== 200) throw new Error(`read on the other replica: ${g.status}`);
      await g.text();
      lags.push(performance.now() - t);
      const t2 = performance.now();
      await (await fetch(`${r2.url}/collections/lag/documents/${doc.id}`)).text();
      plain.push(performance.now() - t2);
    }
    console.log(
      `\n## read-your-writes lag: write's 200 on replica 1 → readable on replica 2 (x-min-store-seq), ${WRITES} sequential writes`,
    );
    console.log(
      `p50 ${pct(lags, 50).toFixed(1)} ms, p99 ${pct(lags, 99).toFixed(1)} ms (the same read without waiting: p50 ${pct(plain, 50).toFixed(1)} ms, p99 ${pct(plain, 99).toFixed(1)} ms)`,
    );

    // ---------------------------------------------------------------- search throughput through haproxy
    const query = JSON.stringify({ collection: 'catchup', vector: unit(), k: 10 });
    const run = async (target: string): Promise<{ rps: number; p99: number; non2xx: number }> => {
      const r = await autocannon({
        url: `${target}/search`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: query,
        connections: 16,
        duration: SECONDS,
      });
      return { rps: r.requests.average, p99: r.latency.p99, non2xx: r.non2xx };
    };
    // Warm both replicas (JIT, caches) before anything is timed.
    for (const r of [r1, r2])
      await autocannon({
        url: `${r.url}/search`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: query,
        connections: 16,
        duration: 3,
      });
    const direct = await run(r1.url);
    const lb1 = await startHaproxy([r1.port]);
    const one = await run(lb1.url);
    const lb2 = await startHaproxy([r1.port, r2.port]);
    const two = await run(lb2.url);
    // Again in the other order, to see the drift of a shared machine.
    const twoAgain = await run(lb2.url);
    const oneAgain = await run(lb1.url);
    await lb1.stop();
    await lb2.stop();
    console.log(`\n## vector search (k 10 over ${CATCHUP} docs), 16 connections, ${SECONDS} s each`);
    console.log(`direct to one replica: ${direct.rps.toFixed(0)} req/s (p99 ${direct.p99} ms, non-2xx ${direct.non2xx})`);
    console.log(
      `haproxy → 1 replica: ${one.rps.toFixed(0)} req/s (p99 ${one.p99} ms, non-2xx ${one.non2xx}); balancer/direct ${(one.rps / direct.rps).toFixed(2)}`,
    );
    console.log(
      `haproxy → 2 replicas: ${two.rps.toFixed(0)} req/s (p99 ${two.p99} ms, non-2xx ${two.non2xx}); 2/1 replicas ${(two.rps / one.rps).toFixed(2)}`,
    );
    console.log(
      `repeated, reverse order: 2 replicas ${twoAgain.rps.toFixed(0)} req/s, 1 replica ${oneAgain.rps.toFixed(0)} req/s; 2/1 ${(twoAgain.rps / oneAgain.rps).toFixed(2)}`,
    );
  } finally {
    await Promise.all(replicas.map((r) => r.kill()));
  }
} finally {
  cluster.destroy();
}
