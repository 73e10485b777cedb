import type { LexicalSettings } from './types.js';

/**
 * BM25 over the text of a collection's documents, in memory. It is derived
 * state: the owner (a collection) adds and removes documents in the same
 * synchronous step that changes its document table, and rebuilds it from the
 * stored texts on load, so it is exactly as durable as the texts themselves
 * (the WAL and snapshots) and never needs files of its own.
 *
 * Scoring is Lucene's BM25 (what Anserini/Pyserini report MS MARCO figures with):
 *   idf(t)    = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))
 *   score(d)  = Σ over query terms t of idf(t) · tf(t,d) · (k1 + 1) / (tf(t,d) + k1 · (1 − b + b · |d| / avgdl))
 * with N the documents that have text, |d| a document's length in tokens and
 * avgdl their mean. A term repeated in the query counts once per occurrence,
 * as in a Lucene BooleanQuery. No stemming and no stop words.
 */

export const DEFAULT_K1 = 0.9;
export const DEFAULT_B = 0.4;

const segmenter = new Intl.Segmenter('und', { granularity: 'word' });

/**
 * Unicode word segmentation (UAX #29 via ICU, so CJK, accents and apostrophes
 * are handled), NFKC-normalized and lowercased; punctuation and spaces dropped.
 */
export function tokenize(text: string): string[] {
  const out: string[] = [];
  for (const s of segmenter.segment(text.normalize('NFKC').toLowerCase())) {
    if (s.isWordLike) out.push(s.segment);
  }
  return out;
}

export interface LexicalHit {
  label: number;
  score: number;
}

function termCounts(text: string): { counts: Map<string, number>; length: number } {
  const tokens = tokenize(text);
  const counts = new Map<string, number>();
  for (const t of tokens) counts.set(t, (counts.get(t) ?? 0) + 1);
  return { counts, length: tokens.length };
}

export class LexicalIndex {
  /** term → (label → term frequency) */
  private readonly postings = new Map<string, Map<number, number>>();
  /** label → length in tokens, for every document with text */
  private readonly lengths = new Map<number, number>();
  private totalLength = 0;

  constructor(readonly params: LexicalSettings) {}

  /** Documents indexed (those with text). */
  get size(): number {
    return this.lengths.size;
  }

  add(label: number, text: string): void {
    if (this.lengths.has(label)) throw new Error(`lexical index already holds label ${label}`);
    const { counts, length } = termCounts(text);
    for (const [term, tf] of counts) {
      let p = this.postings.get(term);
      if (!p) this.postings.set(term, (p = new Map()));
      p.set(label, tf);
    }
    this.lengths.set(label, length);
    this.totalLength += length;
  }

  /** `text` must be the text the label was added with. */
  remove(label: number, text: string): void {
    const length = this.lengths.get(label);
    if (length === undefined) return;
    for (const term of termCounts(text).counts.keys()) {
      const p = this.postings.get(term);
      if (!p) continue;
      p.delete(label);
      if (p.size === 0) this.postings.delete(term);
    }
    this.lengths.delete(label);
    this.totalLength -= length;
  }

  /** The `limit` best-scoring labels (score > 0) that pass `allow`, best first; ties by label. */
  search(text: string, limit: number, allow?: (label: number) => boolean): LexicalHit[] {
    const n = this.lengths.size;
    if (n === 0 || limit <= 0) return [];
    const { k1, b } = this.params;
    const avgdl = this.totalLength / n || 1;
    const scores = new Map<number, number>();
    for (const term of tokenize(text)) {
      const p = this.postings.get(term);
      if (!p) continue;
      const idf = Math.log(1 + (n - p.size + 0.5) / (p.size + 0.5));
      for (const [label, tf] of p) {
        const dl = this.lengths.get(label)!;
        const s = (idf * tf * (k1 + 1)) / (tf + k1 * (1 - b + (b * dl) / avgdl));
        scores.set(label, (scores.get(label) ?? 0) + s);
      }
    }
    const hits: LexicalHit[] = [];
    for (const [label, score] of scores) {
      if (score > 0 && (!allow || allow(label))) hits.push({ label, score });
    }
    hits.sort((x, y) => y.score - x.score || x.label - y.label);
    return hits.length > limit ? hits.slice(0, limit) : hits;
  }
}
