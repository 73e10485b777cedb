/**
 * Quality evaluation of an embedding model through the service's own runtime (Engine → tokenizer →
 * worker pool → ONNX Runtime), over the model's grid of `layer` × `dimensions`:
 *
 *   STS-B dev (Spearman), SICK-R test (Spearman), MS MARCO 5k retrieval (nDCG@10, recall@10),
 *   MS MARCO again with the model's `query` / `document` prompts when it ships both, and the cost of
 *   each exit layer in tokens/s through the runtime (the widths of one layer share that cost)
 *
 * next to baselines computed here: TF-IDF cosine (words, IDF from the Debian dictionary corpus the
 * default model is trained on), BM25 for retrieval (k1 0.9, b 0.4, IDF from the 5k passages), the
 * untrained placeholder model (tools/make_test_models.py) and, with --previous, an earlier model.
 *
 *   npx tsx benchmarks/eval.ts [--model DIR] [--untrained DIR] [--previous DIR] [--out FILE.md]
 *                              [--plot benchmarks/eval-plot.svg] [--quick] [--baselines-only] [--full-only]
 *
 * Tokens/s is a throughput figure: run it under `flock /tmp/bench.lock` on a shared machine.
 * The evaluation sets live in ../shared/assets/eval; when that folder is absent the script says so
 * and exits 0. Nothing here is fitted on evaluation data: the TF-IDF statistics come from the
 * dictionary text, the model's weights were trained on dictionary text only.
 *
 * Layers: each cell asks the engine for `{ layer, dimensions }`. When the engine cannot exit early
 * (422 / validation error), the cell is reported as "n/a (layer exit not available)".
 * Dimensions: per layer the corpus is embedded once at full width; the smaller Matryoshka widths are
 * requested from the engine for a sample and checked to equal the truncated + renormalized full
 * vectors (that is what the runtime does), then derived from the full vectors for the rest.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Engine } from '../src/runtime/engine.js';
import { dot, EVAL, loadMsmarco, loadSick, loadStsb, type Pairs, prefix, type Retrieval, retrievalScores, spearman } from './eval-lib.js';

export { rank, spearman } from './eval-lib.js';

const ROOT = resolve(import.meta.dirname, '..');

function arg(name: string, dflt?: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const QUICK = process.argv.includes('--quick');
/** Only the lexical baselines (TF-IDF, BM25): no model is loaded. */
const BASELINES_ONLY = process.argv.includes('--baselines-only');
/** The model at full depth and width only (one cell instead of the grid). */
const FULL_ONLY = process.argv.includes('--full-only');
const MODEL = resolve(arg('--model', join(ROOT, 'models/default'))!);
const OUT_MD = arg('--out');
const PLOT = resolve(arg('--plot', join(ROOT, 'benchmarks/eval-plot.svg'))!);

// ---------------------------------------------------------------- evaluation of vectors
interface Row {
  name: string;
  layer: string;
  dims: string;
  sts: number | null;
  sick: number | null;
  ndcg: number | null;
  recall: number | null;
  /** MS MARCO with the model's `query` / `document` prompts (when it ships them). */
  ndcgPrompt?: number | null;
  recallPrompt?: number | null;
  /** Tokens/s through the runtime at this exit layer (embedding STS-B dev + SICK-R + MS MARCO once). */
  tokensPerS?: number | null;
  note?: string;
}

/** A row for something that could not be measured, saying why. */
const notMeasured = (name: string, note: string, layer = '–', dims = '–'): Row => ({
  name,
  layer,
  dims,
  sts: null,
  sick: null,
  ndcg: null,
  recall: null,
  note,
});

function stsScore(va: Float32Array[], vb: Float32Array[], gold: number[]): number {
  return spearman(
    va.map((v, i) => dot(v, vb[i]!)),
    gold,
  );
}

// ---------------------------------------------------------------- TF-IDF baseline (words, dictionary IDF)
const WORD_RE = /[a-z0-9]+/g;
const words = (t: string): string[] => t.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase().match(WORD_RE) ?? [];

function dictionaryCorpus(): string[] | null {
  const path = join(ROOT, 'training/build/corpus.txt');
  if (!existsSync(path)) {
    console.error('training/build/corpus.txt missing: running training/prep_data.py (needs wordnet-base, dict-gcide)…');
    const r = spawnSync('/usr/bin/python3', [join(ROOT, 'training/prep_data.py')], { stdio: 'inherit' });
    if (r.status !== 0 || !existsSync(path)) return null;
  }
  return readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .filter((l) => l);
}

function tfidfEmbedder(corpus: string[]): (t: string) => Map<string, number> {
  const df = new Map<string, number>();
  for (const ln of corpus) for (const w of new Set(words(ln))) df.set(w, (df.get(w) ?? 0) + 1);
  const N = corpus.length;
  return (t: string) => {
    const v = new Map<string, number>();
    for (const w of words(t)) v.set(w, (v.get(w) ?? 0) + Math.log(N / ((df.get(w) ?? 0) + 1)));
    let n = 0;
    for (const x of v.values()) n += x * x;
    n = Math.sqrt(n);
    if (n > 0) for (const [w, x] of v) v.set(w, x / n);
    return v;
  };
}

function sparseDot(a: Map<string, number>, b: Map<string, number>): number {
  let s = 0;
  const [x, y] = a.size < b.size ? [a, b] : [b, a];
  for (const [w, v] of x) s += v * (y.get(w) ?? 0);
  return s;
}

// ---------------------------------------------------------------- runtime evaluation
const cost = { tokens: 0, ms: 0 };
async function embedAll(e: Engine, texts: string[], layer: number, dimensions?: number, promptName?: string): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  const B = 64;
  for (let i = 0; i < texts.length; i += B) {
    const t0 = performance.now();
    const r = await e.embed(texts.slice(i, i + B), { layer, dimensions, promptName });
    cost.ms += performance.now() - t0;
    cost.tokens += r.totalTokens;
    out.push(...r.vectors);
  }
  return out;
}

async function evalModel(dir: string, name: string, data: { sts: Pairs; sick: Pairs; ms: Retrieval }, fullOnly: boolean): Promise<Row[]> {
  const e = await Engine.load({ modelDir: dir, workers: 1, intraOpThreads: 2, inferenceNice: 19 });
  const rows: Row[] = [];
  try {
    const H = e.spec.hiddenSize;
    const L = e.spec.numLayers;
    const layers = fullOnly ? [L] : (e.spec.exitLayers ?? Array.from({ length: L }, (_, i) => i + 1));
    const dims = fullOnly ? [H] : (e.spec.matryoshkaDimensions ?? [H]);
    if (!dims.includes(H)) dims.push(H);
    dims.sort((a, b) => a - b);
    for (const layer of layers) {
      try {
        e.validate({ layer });
      } catch (err) {
        for (const d of dims) rows.push(notMeasured(name, 'n/a (layer exit not available)', String(layer), String(d)));
        console.error(`${name}: layer ${layer}: ${(err as Error).message}`);
        continue;
      }
      const t0 = performance.now();
      const full = async (texts: string[], prompt?: string) => embedAll(e, texts, layer, undefined, prompt); // no `dimensions`: the full width
      cost.tokens = 0;
      cost.ms = 0;
      const [sa, sb, ka, kb, docs, qs] = [
        await full(data.sts.a),
        await full(data.sts.b),
        await full(data.sick.a),
        await full(data.sick.b),
        await full(data.ms.docs),
        await full(data.ms.queries),
      ];
      const tokensPerS = cost.tokens / (cost.ms / 1000);
      const prompted = 'query' in e.spec.prompts && 'document' in e.spec.prompts;
      const [pdocs, pqs] = prompted ? [await full(data.ms.docs, 'document'), await full(data.ms.queries, 'query')] : [null, null];
      // The runtime's `dimensions` must equal prefix + renormalization of the full vector: check on a sample.
      for (const d of dims) {
        if (d === H) continue;
        const sample = data.sts.a.slice(0, 32);
        const got = await embedAll(e, sample, layer, d);
        const worst = Math.max(...got.map((v, i) => Math.max(...Array.from(v, (x, j) => Math.abs(x - prefix(sa[i]!, d)[j]!)))));
        if (!(worst < 1e-4)) throw new Error(`dimensions=${d}: runtime output differs from truncated full vectors by ${worst}`);
      }
      for (const d of dims) {
        const P = (vs: Float32Array[]) => (d === H ? vs : vs.map((v) => prefix(v, d)));
        const dv = P(docs),
          qv = P(qs);
        const ret = retrievalScores(data.ms, (qi) => Float64Array.from(dv, (v) => dot(v, qv[qi]!)));
        let pret: { ndcg: number; recall: number } | null = null;
        if (pdocs && pqs) {
          const pdv = P(pdocs),
            pqv = P(pqs);
          pret = retrievalScores(data.ms, (qi) => Float64Array.from(pdv, (v) => dot(v, pqv[qi]!)));
        }
        rows.push({
          name,
          layer: String(layer),
          dims: String(d),
          sts: stsScore(P(sa), P(sb), data.sts.gold),
          sick: stsScore(P(ka), P(kb), data.sick.gold),
          ndcg: ret.ndcg,
          recall: ret.recall,
          ndcgPrompt: pret?.ndcg ?? null,
          recallPrompt: pret?.recall ?? null,
          tokensPerS,
        });
      }
      console.error(`${name}: layer ${layer} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
  } finally {
    await e.close();
  }
  return rows;
}

// ---------------------------------------------------------------- output
const f3 = (x: number | null) => (x === null ? 'n/a' : x.toFixed(3));

function table(rows: Row[]): string {
  const out = [
    '| model | layer | dimensions | STS-B dev Spearman | SICK-R test Spearman | MS MARCO nDCG@10 | MS MARCO recall@10 | nDCG@10 with prompts | recall@10 with prompts | tokens/s |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const opt = (x: number | null | undefined) => (x === null || x === undefined ? '–' : x.toFixed(3));
  const tps = (x: number | null | undefined) => (x === null || x === undefined ? '–' : Math.round(x).toLocaleString('en-US'));
  for (const r of rows) {
    if (r.note && r.sts === null && r.ndcg === null) out.push(`| ${r.name} | ${r.layer} | ${r.dims} | ${r.note} | | | | | | |`);
    else
      out.push(
        `| ${r.name} | ${r.layer} | ${r.dims} | ${f3(r.sts)} | ${f3(r.sick)} | ${f3(r.ndcg)} | ${f3(r.recall)} | ${opt(r.ndcgPrompt)} | ${opt(r.recallPrompt)} | ${tps(r.tokensPerS)} |`,
      );
  }
  return out.join('\n');
}

function svgPlot(rows: Row[], baselines: { label: string; value: number; color: string }[]): string {
  const W = 640,
    Hh = 400,
    ml = 60,
    mr = 170,
    mt = 40,
    mb = 50;
  const pts = rows.filter((r) => r.sts !== null);
  const dims = [...new Set(pts.map((r) => Number(r.dims)))].sort((a, b) => a - b);
  const layers = [...new Set(pts.map((r) => r.layer))];
  const vals = [...pts.map((r) => r.sts!), ...baselines.map((b) => b.value)];
  const lo = Math.floor(Math.min(...vals) * 20) / 20 - 0.05,
    hi = Math.ceil(Math.max(...vals) * 20) / 20;
  const x = (d: number) =>
    ml + ((Math.log2(d) - Math.log2(dims[0]!)) / Math.max(1e-9, Math.log2(dims.at(-1)!) - Math.log2(dims[0]!))) * (W - ml - mr);
  const y = (v: number) => mt + (1 - (v - lo) / (hi - lo)) * (Hh - mt - mb);
  const colors = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b'];
  const s: string[] = [];
  s.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Hh}" viewBox="0 0 ${W} ${Hh}" font-family="sans-serif" font-size="12">`,
  );
  s.push(`<rect width="${W}" height="${Hh}" fill="white"/>`);
  s.push(`<text x="${ml}" y="22" font-size="14">STS-B dev Spearman vs dimensions, one line per exit layer (default model)</text>`);
  for (let v = lo; v <= hi + 1e-9; v += 0.05) {
    s.push(`<line x1="${ml}" x2="${W - mr}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    s.push(`<text x="${ml - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(2)}</text>`);
  }
  for (const d of dims) {
    s.push(`<line x1="${x(d)}" x2="${x(d)}" y1="${mt}" y2="${Hh - mb}" stroke="#eee"/>`);
    s.push(`<text x="${x(d)}" y="${Hh - mb + 16}" text-anchor="middle">${d}</text>`);
  }
  s.push(`<text x="${(ml + W - mr) / 2}" y="${Hh - 12}" text-anchor="middle">dimensions (log scale)</text>`);
  s.push(`<text transform="translate(16 ${(mt + Hh - mb) / 2}) rotate(-90)" text-anchor="middle">Spearman</text>`);
  s.push(`<rect x="${ml}" y="${mt}" width="${W - ml - mr}" height="${Hh - mt - mb}" fill="none" stroke="#888"/>`);
  let ly = mt + 10;
  layers.forEach((l, i) => {
    const c = colors[i % colors.length];
    const p = pts.filter((r) => r.layer === l).sort((a, b) => Number(a.dims) - Number(b.dims));
    s.push(
      `<polyline fill="none" stroke="${c}" stroke-width="2" points="${p.map((r) => `${x(Number(r.dims)).toFixed(1)},${y(r.sts!).toFixed(1)}`).join(' ')}"/>`,
    );
    for (const r of p) s.push(`<circle cx="${x(Number(r.dims)).toFixed(1)}" cy="${y(r.sts!).toFixed(1)}" r="3" fill="${c}"/>`);
    s.push(
      `<line x1="${W - mr + 12}" x2="${W - mr + 32}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2"/><text x="${W - mr + 38}" y="${ly + 4}">layer ${l}</text>`,
    );
    ly += 18;
  });
  for (const b of baselines) {
    s.push(`<line x1="${ml}" x2="${W - mr}" y1="${y(b.value)}" y2="${y(b.value)}" stroke="${b.color}" stroke-dasharray="6 4"/>`);
    s.push(
      `<line x1="${W - mr + 12}" x2="${W - mr + 32}" y1="${ly}" y2="${ly}" stroke="${b.color}" stroke-dasharray="6 4"/><text x="${W - mr + 38}" y="${ly + 4}">${b.label} ${b.value.toFixed(3)}</text>`,
    );
    ly += 18;
  }
  s.push('</svg>');
  return `${s.join('\n')}\n`;
}

// ---------------------------------------------------------------- main
if (!existsSync(EVAL)) {
  console.log(`skipped: ${EVAL} is absent (the evaluation sets live in ../shared/assets/eval)`);
  process.exit(0);
}
const sts = loadStsb('dev');
const sick = loadSick();
const ms = loadMsmarco();
if (QUICK) {
  // a smoke run: a tenth of each set
  for (const p of [sts, sick]) {
    p.a.length = p.b.length = p.gold.length = Math.ceil(p.gold.length / 10);
  }
  ms.docs.length = ms.docIds.length = 500;
}
const data = { sts, sick, ms };
console.error(
  `STS-B dev ${sts.gold.length} pairs, SICK-R test ${sick.gold.length} pairs, MS MARCO ${ms.docs.length} docs / ${ms.queries.length} queries`,
);

const rows: Row[] = [];
if (!BASELINES_ONLY) rows.push(...(await evalModel(MODEL, 'default', data, FULL_ONLY)));

// TF-IDF baseline
const corpus = dictionaryCorpus();
if (corpus) {
  const emb = tfidfEmbedder(corpus);
  const S = (p: Pairs) =>
    spearman(
      p.a.map((a, i) => sparseDot(emb(a), emb(p.b[i]!))),
      p.gold,
    );
  const dv = ms.docs.map(emb),
    qv = ms.queries.map(emb);
  const ret = retrievalScores(ms, (qi) => Float64Array.from(dv, (v) => sparseDot(v, qv[qi]!)));
  rows.push({
    name: 'TF-IDF (words, dictionary IDF)',
    layer: '–',
    dims: 'sparse',
    sts: S(sts),
    sick: S(sick),
    ndcg: ret.ndcg,
    recall: ret.recall,
  });
} else {
  rows.push(notMeasured('TF-IDF', 'n/a (dictionary corpus unavailable)'));
}

// BM25 baseline for retrieval (k1 0.9, b 0.4 as Anserini's MS MARCO default; IDF from the 5k passages)
{
  const k1 = 0.9,
    b = 0.4;
  const toks = ms.docs.map(words);
  const avg = toks.reduce((a, t) => a + t.length, 0) / toks.length;
  const df = new Map<string, number>();
  for (const t of toks) for (const w of new Set(t)) df.set(w, (df.get(w) ?? 0) + 1);
  const N = toks.length;
  const tf = toks.map((t) => {
    const m = new Map<string, number>();
    for (const w of t) m.set(w, (m.get(w) ?? 0) + 1);
    return m;
  });
  const idf = (w: string) => Math.log(1 + (N - (df.get(w) ?? 0) + 0.5) / ((df.get(w) ?? 0) + 0.5));
  const ret = retrievalScores(ms, (qi) => {
    const q = words(ms.queries[qi]!);
    return Float64Array.from(tf, (m, di) => {
      let sc = 0;
      for (const w of q) {
        const f = m.get(w) ?? 0;
        if (f > 0) sc += (idf(w) * (f * (k1 + 1))) / (f + k1 * (1 - b + (b * toks[di]!.length) / avg));
      }
      return sc;
    });
  });
  rows.push({
    name: 'BM25 (k1 0.9, b 0.4, corpus IDF)',
    layer: '–',
    dims: 'sparse',
    sts: null,
    sick: null,
    ndcg: ret.ndcg,
    recall: ret.recall,
  });
}

// the previous default model (e.g. `git show` of the last commit's models/default), full size
const previous = arg('--previous');
if (previous && existsSync(previous)) rows.push(...(await evalModel(resolve(previous), 'previous default', data, true)));

// untrained placeholder baseline
let untrained = arg('--untrained');
if (!untrained && !BASELINES_ONLY) {
  const tmp = mkdtempSync(join(tmpdir(), 'untrained-'));
  const r = spawnSync('/usr/bin/python3', [join(ROOT, 'tools/make_test_models.py'), '--untrained-default', tmp], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (r.status === 0) untrained = tmp;
}
if (untrained && existsSync(untrained)) rows.push(...(await evalModel(resolve(untrained), 'untrained (random placeholder)', data, true)));
else if (!BASELINES_ONLY) rows.push(notMeasured('untrained', 'n/a (could not generate it)'));

const md = table(rows);
console.log(md);
if (OUT_MD) writeFileSync(resolve(OUT_MD), `${md}\n`);
const base = rows
  .filter((r) => r.name !== 'default' && r.sts !== null)
  .map((r, i) => ({ label: r.name.split(' ')[0]!, value: r.sts!, color: ['#555', '#aaa'][i % 2]! }));
if (!QUICK && !BASELINES_ONLY && !FULL_ONLY) {
  writeFileSync(
    PLOT,
    svgPlot(
      rows.filter((r) => r.name === 'default'),
      base,
    ),
  );
  console.error(`wrote ${PLOT}`);
}
