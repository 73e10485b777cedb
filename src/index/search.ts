import { type Fused, fuse, type Ranked } from './fusion.js';
import type { ValidSearchOptions } from './validate.js';

/**
 * The backend-neutral part of a search: how deep each side must retrieve,
 * and how the lists become the page of results (fusion, score_threshold,
 * offset, k). A backend fetches the lists its own way (synchronously or not)
 * between `searchDepths` and `finishSearch`.
 */

/** Candidates each side contributes to a hybrid fusion (at least offset + k). */
export const HYBRID_DEPTH = 100;

/** How many hits each side must return, best first; 0: that side is not searched. */
export function searchDepths(o: ValidSearchOptions): { dense: number; lexical: number } {
  const want = o.offset + o.k;
  if (o.mode === 'dense') return { dense: want, lexical: 0 };
  if (o.mode === 'lexical') return { dense: 0, lexical: want };
  const depth = Math.max(want, HYBRID_DEPTH);
  return { dense: depth, lexical: depth };
}

/**
 * The final page. Dense mode keeps the dense score as `score`; lexical mode
 * reports the BM25 score as `score` and `lexical_score`; hybrid fuses.
 */
export function finishSearch<K>(o: ValidSearchOptions, dense: Ranked<K>[], lexical: Ranked<K>[]): Fused<K>[] {
  let list: Fused<K>[];
  if (o.mode === 'dense') list = dense.map(({ key, score }) => ({ key, score }));
  else if (o.mode === 'lexical') list = lexical.map(({ key, score }) => ({ key, score, lexical_score: score }));
  else list = fuse(dense, lexical, o.fusion);
  const threshold = o.scoreThreshold;
  if (threshold !== undefined) list = list.filter((h) => h.score >= threshold);
  return list.slice(o.offset, o.offset + o.k);
}

/**
 * Graph candidates rescored with the full vectors of a funnel collection, by default.
 * Rescoring is cheap (one dequantized dot product each) and the graph walk's breadth
 * is max(k, 128) anyway, so asking it for 100 candidates costs little more than for 10;
 * a short prefix (64 of 384 dimensions) orders neighbours coarsely, so the shortlist must
 * be wide: 40 gave recall@10 0.93 on 100k embedding-shaped vectors (benchmarks/scale.ts).
 */
export function defaultRescore(want: number): number {
  return Math.max(10 * want, 100);
}
