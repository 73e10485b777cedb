/**
 * The evaluation sets (../shared/assets/eval) and their metrics, shared by benchmarks/eval.ts (the
 * model's layer × dimensions grid) and benchmarks/eval-quantized.ts (float vs int8 vs binary outputs).
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const EVAL = resolve(import.meta.dirname, '../../shared/assets/eval');

// ---------------------------------------------------------------- data
export interface Pairs {
  a: string[];
  b: string[];
  gold: number[];
}

export function loadStsb(split: string): Pairs {
  const lines = readFileSync(join(EVAL, 'stsbenchmark/train-dev.tsv'), 'utf8').split(/\r?\n/);
  const head = lines[0]!.split('\t');
  const [iSplit, iScore, iA, iB] = ['split', 'score', 'sentence1', 'sentence2'].map((c) => head.indexOf(c));
  const p: Pairs = { a: [], b: [], gold: [] };
  for (const ln of lines.slice(1)) {
    if (!ln) continue;
    const c = ln.split('\t');
    if (c[iSplit!] !== split) continue;
    p.a.push(c[iA!]!);
    p.b.push(c[iB!]!);
    p.gold.push(Number(c[iScore!]));
  }
  return p;
}

export function loadSick(): Pairs {
  const lines = readFileSync(join(EVAL, 'sick-r/SICK_test_annotated.txt'), 'utf8').split(/\r?\n/).slice(1);
  const p: Pairs = { a: [], b: [], gold: [] };
  for (const ln of lines) {
    if (!ln.trim()) continue;
    const c = ln.split('\t');
    p.a.push(c[1]!);
    p.b.push(c[2]!);
    p.gold.push(Number(c[3]));
  }
  return p;
}

export interface Retrieval {
  docIds: string[];
  docs: string[];
  qIds: string[];
  queries: string[];
  qrels: Map<string, Map<string, number>>;
}

export function loadMsmarco(): Retrieval {
  const dir = join(EVAL, 'retrieval-msmarco-5k');
  const docIds: string[] = [],
    docs: string[] = [];
  for (const ln of readFileSync(join(dir, 'corpus.jsonl'), 'utf8').split(/\r?\n/)) {
    if (!ln.trim()) continue;
    const o = JSON.parse(ln) as { _id: string; title?: string; text: string };
    docIds.push(o._id);
    docs.push(o.title ? `${o.title} ${o.text}` : o.text);
  }
  const qrels = new Map<string, Map<string, number>>();
  const rows = readFileSync(join(dir, 'qrels/test.tsv'), 'utf8').split(/\r?\n/);
  for (const ln of rows) {
    const c = ln.split('\t');
    if (c.length < 3 || !/^\d+$/.test(c[2]!.trim())) continue; // skips a header line
    const rel = Number(c[2]);
    if (!qrels.has(c[0]!)) qrels.set(c[0]!, new Map());
    qrels.get(c[0]!)!.set(c[1]!, rel);
  }
  const qIds: string[] = [],
    queries: string[] = [];
  for (const ln of readFileSync(join(dir, 'queries.jsonl'), 'utf8').split(/\r?\n/)) {
    if (!ln.trim()) continue;
    const o = JSON.parse(ln) as { _id: string; text: string };
    if (!qrels.has(o._id)) continue;
    qIds.push(o._id);
    queries.push(o.text);
  }
  return { docIds, docs, qIds, queries, qrels };
}

// ---------------------------------------------------------------- metrics
/** Ranks 1..n, ties get the average of the ranks they span. */
export function rank(x: readonly number[]): Float64Array {
  const idx = x.map((_, i) => i).sort((i, j) => x[i]! - x[j]!);
  const r = new Float64Array(x.length);
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j + 1 < idx.length && x[idx[j + 1]!] === x[idx[i]!]) j++;
    for (let k = i; k <= j; k++) r[idx[k]!] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return r;
}

export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0,
    mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i]!;
    mb += b[i]!;
  }
  ma /= n;
  mb /= n;
  let sab = 0,
    saa = 0,
    sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i]! - ma,
      db = b[i]! - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  return sab / Math.sqrt(saa * sbb);
}

export function spearman(a: readonly number[], b: readonly number[]): number {
  return pearson(rank(a), rank(b));
}

export function dot(a: Float32Array | Float64Array, b: Float32Array | Float64Array, n = a.length): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[i]! * b[i]!;
  return s;
}

/** Prefix of a vector, renormalized (what the runtime does for `dimensions`). */
export function prefix(v: Float32Array, d: number): Float32Array {
  const out = v.slice(0, d);
  const n = Math.sqrt(dot(out, out));
  if (n > 0) for (let i = 0; i < d; i++) out[i]! /= n;
  return out;
}

/** nDCG@k with linear gains (as pytrec_eval / BEIR) and recall@k over relevant (rel > 0) documents. */
export function retrievalScores(r: Retrieval, scores: (qi: number) => Float64Array, k = 10): { ndcg: number; recall: number } {
  let ndcg = 0,
    recall = 0;
  for (let qi = 0; qi < r.qIds.length; qi++) {
    const s = scores(qi);
    const top = [...s.keys()].sort((i, j) => s[j]! - s[i]! || i - j).slice(0, k);
    const rel = r.qrels.get(r.qIds[qi]!)!;
    let dcg = 0,
      hits = 0;
    top.forEach((di, pos) => {
      const g = rel.get(r.docIds[di]!) ?? 0;
      dcg += g / Math.log2(pos + 2);
      if (g > 0) hits++;
    });
    const ideal = [...rel.values()]
      .filter((g) => g > 0)
      .sort((x, y) => y - x)
      .slice(0, k);
    const idcg = ideal.reduce((acc, g, pos) => acc + g / Math.log2(pos + 2), 0);
    const nRel = [...rel.values()].filter((g) => g > 0).length;
    ndcg += idcg > 0 ? dcg / idcg : 0;
    recall += nRel > 0 ? hits / nRel : 0;
  }
  return { ndcg: ndcg / r.qIds.length, recall: recall / r.qIds.length };
}
