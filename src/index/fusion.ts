import type { Fusion } from './types.js';

/**
 * Fusion of a dense and a lexical result list (hybrid search). Both lists are
 * best first; keys identify documents (labels, ids: whatever the backend uses).
 *
 * - rrf (reciprocal rank fusion, Cormack et al. 2009): score = Σ 1 / (k + rank)
 *   over the lists the document appears in, rank counted from 1.
 * - weighted: each list's scores are min-max normalized over the candidates it
 *   returned ((s − min) / (max − min); a list whose scores are all equal maps
 *   them to 1), then score = alpha · dense + (1 − alpha) · lexical, a list the
 *   document is missing from contributing 0.
 *
 * Ties keep the order of first appearance (dense list first).
 */

export const DEFAULT_RRF_K = 60;
export const DEFAULT_ALPHA = 0.5;

export interface Ranked<K> {
  key: K;
  score: number;
}

export interface Fused<K> {
  key: K;
  score: number;
  dense_score?: number;
  lexical_score?: number;
}

function normalizer(list: Ranked<unknown>[]): (s: number) => number {
  let min = Infinity;
  let max = -Infinity;
  for (const { score } of list) {
    if (score < min) min = score;
    if (score > max) max = score;
  }
  const span = max - min;
  return span > 0 ? (s) => (s - min) / span : () => 1;
}

export function fuse<K>(dense: Ranked<K>[], lexical: Ranked<K>[], fusion: Fusion): Fused<K>[] {
  const byKey = new Map<K, Fused<K> & { order: number }>();
  const entry = (key: K): Fused<K> & { order: number } => {
    let e = byKey.get(key);
    if (!e) byKey.set(key, (e = { key, score: 0, order: byKey.size }));
    return e;
  };
  if (fusion.method === 'rrf') {
    const k = fusion.k ?? DEFAULT_RRF_K;
    dense.forEach((h, i) => {
      const e = entry(h.key);
      e.dense_score = h.score;
      e.score += 1 / (k + i + 1);
    });
    lexical.forEach((h, i) => {
      const e = entry(h.key);
      e.lexical_score = h.score;
      e.score += 1 / (k + i + 1);
    });
  } else {
    const alpha = fusion.alpha ?? DEFAULT_ALPHA;
    const nd = normalizer(dense);
    const nl = normalizer(lexical);
    for (const h of dense) {
      const e = entry(h.key);
      e.dense_score = h.score;
      e.score += alpha * nd(h.score);
    }
    for (const h of lexical) {
      const e = entry(h.key);
      e.lexical_score = h.score;
      e.score += (1 - alpha) * nl(h.score);
    }
  }
  return [...byKey.values()].sort((a, b) => b.score - a.score || a.order - b.order).map(({ order: _order, ...rest }) => rest);
}
