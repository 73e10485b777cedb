/**
 * HNSW recall on real embeddings: the MS MARCO 5k corpus (../shared/assets/eval) embedded by the
 * service's own runtime, stored in a durable collection, searched with its queries at several ef,
 * against exact brute force. Usage: npx tsx benchmarks/msmarco-recall.ts [--model models/default]
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CollectionStore, scoreCandidates } from '../src/index/index.js';
import { Engine } from '../src/runtime/engine.js';
import { fmt, ROOT } from './lib.js';

const { values } = parseArgs({ options: { model: { type: 'string', default: join(ROOT, 'models/default') } } });
const dataDir = resolve(ROOT, '../shared/assets/eval/retrieval-msmarco-5k');
if (!existsSync(dataDir)) {
  console.log(`skipped: ${dataDir} not found (needs ../shared)`);
  process.exit(0);
}
const readJsonl = (f: string): Array<{ _id: string; text: string; title?: string }> =>
  readFileSync(join(dataDir, f), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { _id: string; text: string });
const corpus = readJsonl('corpus.jsonl');
const queries = readJsonl('queries.jsonl');

const engine = await Engine.load({ modelDir: values.model! });
await engine.warmUp();
const t0 = performance.now();
const docVectors: Float32Array[] = [];
for (let i = 0; i < corpus.length; i += 256) {
  const r = await engine.embed(
    corpus.slice(i, i + 256).map((d) => d.text),
    {},
  );
  docVectors.push(...r.vectors);
}
const embedSeconds = (performance.now() - t0) / 1000;
const queryVectors = (
  await engine.embed(
    queries.map((q) => q.text),
    {},
  )
).vectors;
await engine.close();

const dir = mkdtempSync(join(tmpdir(), 'msmarco-'));
const store = await CollectionStore.open(dir);
await store.create('msmarco', { dimensions: docVectors[0]!.length, metric: 'cosine' });
const t1 = performance.now();
for (let i = 0; i < corpus.length; i += 256) {
  await store.upsert(
    'msmarco',
    corpus.slice(i, i + 256).map((d, j) => ({ id: d._id, vector: docVectors[i + j]! })),
  );
}
const insertRate = corpus.length / ((performance.now() - t1) / 1000);

const exact = queryVectors.map((q) => new Set(scoreCandidates(q, docVectors, 'cosine', 10).map((h) => corpus[h.index]!._id)));
console.log(
  `# HNSW on MS MARCO 5k embedded by ${values.model} (${corpus.length} docs, ${queries.length} queries, ${docVectors[0]!.length} dims)\n`,
);
console.log(`embedding: ${fmt(corpus.length / embedSeconds)} docs/s; durable insert: ${fmt(insertRate)} docs/s\n`);
console.log('| ef | recall@10 vs brute force | p50 ms | p99 ms |');
console.log('|---|---|---|---|');
for (const ef of [16, 32, 64, 128]) {
  let hits = 0;
  const times: number[] = [];
  queryVectors.forEach((q, i) => {
    const t = performance.now();
    const got = store.search('msmarco', q, { k: 10, ef, include: [] });
    times.push(performance.now() - t);
    for (const h of got) if (exact[i]!.has(h.id)) hits++;
  });
  times.sort((a, b) => a - b);
  console.log(
    `| ${ef} | ${(hits / (10 * queries.length)).toFixed(4)} | ${times[Math.floor(times.length / 2)]!.toFixed(3)} | ${times[Math.floor(times.length * 0.99)]!.toFixed(3)} |`,
  );
}
await store.close();
rmSync(dir, { recursive: true, force: true });
