/**
 * Retrieval quality of the search modes on MS MARCO 5k (../shared/assets/eval): nDCG@10 and
 * recall@10 of dense, lexical (BM25, k1 0.9 b 0.4), hybrid RRF and hybrid weighted search through
 * the durable store, and of the Matryoshka funnel (prefix graph + compact full vectors) against
 * full-width dense search.
 *
 *   npx tsx benchmarks/hybrid-quality.ts [--model models/default]
 *
 * nDCG uses linear gains over the graded qrels, as pytrec_eval / BEIR (and benchmarks/eval.ts).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CollectionStore, type SearchOptions } from '../src/index/index.js';
import { Engine } from '../src/runtime/engine.js';
import { ROOT } from './lib.js';

const { values } = parseArgs({ options: { model: { type: 'string', default: join(ROOT, 'models/default') } } });
const dataDir = resolve(ROOT, '../shared/assets/eval/retrieval-msmarco-5k');
if (!existsSync(dataDir)) {
  console.log(`skipped: ${dataDir} not found (needs ../shared)`);
  process.exit(0);
}
const readJsonl = (f: string): Array<{ _id: string; text: string }> =>
  readFileSync(join(dataDir, f), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { _id: string; text: string });
const corpus = readJsonl('corpus.jsonl');
const allQueries = readJsonl('queries.jsonl');
const qrels = new Map<string, Map<string, number>>();
for (const line of readFileSync(join(dataDir, 'qrels/test.tsv'), 'utf8').split('\n')) {
  const [q, d, g] = line.split('\t');
  if (!q || !d || g === undefined || !/^\d+$/.test(g)) continue;
  if (!qrels.has(q)) qrels.set(q, new Map());
  qrels.get(q)!.set(d, Number(g));
}

// Queries without a relevant passage in the 5k corpus are left out, as BEIR / pytrec_eval and benchmarks/eval.ts do.
const queries = allQueries.filter((q) => [...(qrels.get(q._id)?.values() ?? [])].some((g) => g > 0));

const engine = await Engine.load({ modelDir: values.model! });
await engine.warmUp();
const docVectors: Float32Array[] = [];
for (let i = 0; i < corpus.length; i += 256)
  docVectors.push(
    ...(
      await engine.embed(
        corpus.slice(i, i + 256).map((d) => d.text),
        {},
      )
    ).vectors,
  );
const queryVectors = (
  await engine.embed(
    queries.map((q) => q.text),
    {},
  )
).vectors;
const dims = docVectors[0]!.length;
await engine.close();

const dir = mkdtempSync(join(tmpdir(), 'hybrid-quality-'));
const store = await CollectionStore.open(dir);
const funnels = [
  { name: 'funnel-64-int8', index_dimensions: 64, storage: 'int8' as const },
  { name: 'funnel-64-float16', index_dimensions: 64, storage: 'float16' as const },
  { name: 'funnel-128-int8', index_dimensions: 128, storage: 'int8' as const },
].filter((f) => f.index_dimensions < dims);
await store.create('ms', { dimensions: dims, lexical: { k1: 0.9, b: 0.4 } });
for (const f of funnels) await store.create(f.name, { dimensions: dims, index_dimensions: f.index_dimensions, storage: f.storage });
for (let i = 0; i < corpus.length; i += 256) {
  const docs = corpus.slice(i, i + 256).map((d, j) => ({ id: d._id, text: d.text, vector: docVectors[i + j]! }));
  await store.upsert('ms', docs);
  for (const f of funnels) await store.upsert(f.name, docs);
}

function evaluate(collection: string, opts: (qi: number) => Omit<SearchOptions, 'k'>): { ndcg: number; recall: number } {
  let ndcg = 0;
  let recall = 0;
  queries.forEach((q, qi) => {
    const o = opts(qi);
    const hits = store.search(collection, o.mode === 'lexical' ? undefined : queryVectors[qi], { k: 10, include: [], ...o });
    const rel = qrels.get(q._id) ?? new Map<string, number>();
    let dcg = 0;
    let found = 0;
    hits.forEach((h, pos) => {
      const g = rel.get(h.id) ?? 0;
      dcg += g / Math.log2(pos + 2);
      if (g > 0) found++;
    });
    const ideal = [...rel.values()]
      .filter((g) => g > 0)
      .sort((x, y) => y - x)
      .slice(0, 10);
    const idcg = ideal.reduce((acc, g, pos) => acc + g / Math.log2(pos + 2), 0);
    const nRel = [...rel.values()].filter((g) => g > 0).length;
    ndcg += idcg > 0 ? dcg / idcg : 0;
    recall += nRel > 0 ? found / nRel : 0;
  });
  return { ndcg: ndcg / queries.length, recall: recall / queries.length };
}

const text = (qi: number): string => queries[qi]!.text;
const rows: [string, { ndcg: number; recall: number }][] = [
  ['dense (HNSW, full width)', evaluate('ms', () => ({}))],
  ['lexical (BM25 k1 0.9, b 0.4)', evaluate('ms', (qi) => ({ mode: 'lexical', text: text(qi) }))],
  ['hybrid, RRF k 60 (default)', evaluate('ms', (qi) => ({ mode: 'hybrid', text: text(qi) }))],
  ['hybrid, weighted alpha 0.5 (default)', evaluate('ms', (qi) => ({ mode: 'hybrid', text: text(qi), fusion: { method: 'weighted' } }))],
  ['hybrid, weighted alpha 0.3', evaluate('ms', (qi) => ({ mode: 'hybrid', text: text(qi), fusion: { method: 'weighted', alpha: 0.3 } }))],
  ['hybrid, weighted alpha 0.7', evaluate('ms', (qi) => ({ mode: 'hybrid', text: text(qi), fusion: { method: 'weighted', alpha: 0.7 } }))],
];
for (const f of funnels) {
  rows.push([`dense, funnel: ${f.index_dimensions}-d graph + ${f.storage} rescoring (default rescore)`, evaluate(f.name, () => ({}))]);
}
for (const rescore of [100, 200]) {
  rows.push([
    `dense, funnel: ${funnels[0]!.index_dimensions}-d graph + ${funnels[0]!.storage} rescoring, rescore ${rescore}`,
    evaluate(funnels[0]!.name, () => ({ rescore })),
  ]);
}
rows.push([
  `dense, ${funnels[0]?.index_dimensions ?? 64}-d graph's own top 10 (rescore 10: the prefix picks the set)`,
  evaluate(funnels[0]!.name, () => ({ rescore: 10 })),
]);
// Hybrid over a funnel collection needs a lexical index there too; the dense side is what changes.
await store.close({ snapshot: false });
rmSync(dir, { recursive: true, force: true });

console.log(
  `# Search modes on MS MARCO 5k (${corpus.length} passages, ${queries.length} queries), ${values.model} (${dims} dims); ${cpus()[0]?.model}\n`,
);
console.log('| search | nDCG@10 | recall@10 |');
console.log('|---|---|---|');
for (const [name, r] of rows) console.log(`| ${name} | ${r.ndcg.toFixed(3)} | ${r.recall.toFixed(3)} |`);
