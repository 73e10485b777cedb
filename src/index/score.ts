import { ValidationError } from './errors.js';
import type { Metric } from './types.js';

/**
 * Exact scoring, for the index-free mode (rank a handful of candidates without
 * building a graph) and as the ground truth the HNSW results are tested against.
 * Scores follow the store's convention: higher is better for every metric.
 */

export interface ScoredCandidate {
  /** Position of the candidate in the input array. */
  index: number;
  score: number;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/**
 * cosine: a·b / (|a||b|) (0 when either vector is all zeros, where the angle is undefined);
 * ip: a·b; l2: -|a-b| (the distance itself, not its square).
 */
export function exactScore(a: ArrayLike<number>, b: ArrayLike<number>, metric: Metric): number {
  switch (metric) {
    case 'ip':
      return dot(a, b);
    case 'cosine': {
      const na = Math.sqrt(dot(a, a));
      const nb = Math.sqrt(dot(b, b));
      return na === 0 || nb === 0 ? 0 : dot(a, b) / (na * nb);
    }
    case 'l2': {
      let s = 0;
      for (let i = 0; i < a.length; i++) {
        const d = a[i]! - b[i]!;
        s += d * d;
      }
      return -Math.sqrt(s);
    }
  }
}

/** Worse-first order: lower score, and on ties the higher index, is worse. */
function worse(a: ScoredCandidate, b: ScoredCandidate): boolean {
  return a.score < b.score || (a.score === b.score && a.index > b.index);
}

/**
 * The k best candidates by exact score, best first (ties: lower index first).
 * A bounded min-heap keeps this O(n log k) for large candidate lists.
 */
export function scoreCandidates(query: Float32Array, candidates: readonly Float32Array[], metric: Metric, k: number): ScoredCandidate[] {
  if (!Number.isInteger(k) || k < 0) throw new ValidationError(`k must be a non-negative integer, got ${k}`);
  const heap: ScoredCandidate[] = [];
  const siftUp = (i: number): void => {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!worse(heap[i]!, heap[p]!)) break;
      [heap[i], heap[p]] = [heap[p]!, heap[i]!];
      i = p;
    }
  };
  const siftDown = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && worse(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && worse(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  if (k === 0) return [];
  const dims = query.length;
  let qNorm = 0;
  for (let i = 0; i < dims; i++) qNorm += query[i]! * query[i]!;
  qNorm = Math.sqrt(qNorm);
  candidates.forEach((c, index) => {
    if (c.length !== dims) {
      throw new ValidationError(`candidate ${index} has length ${c.length}, expected ${dims}`);
    }
    // One pass per candidate; exactScore would take three for cosine.
    let score: number;
    if (metric === 'l2') {
      let s = 0;
      for (let i = 0; i < dims; i++) {
        const d = query[i]! - c[i]!;
        s += d * d;
      }
      score = -Math.sqrt(s);
    } else {
      let d = 0;
      let n = 0;
      for (let i = 0; i < dims; i++) {
        d += query[i]! * c[i]!;
        n += c[i]! * c[i]!;
      }
      score = metric === 'ip' ? d : qNorm === 0 || n === 0 ? 0 : d / (qNorm * Math.sqrt(n));
    }
    const item = { index, score };
    if (heap.length < k) {
      heap.push(item);
      siftUp(heap.length - 1);
    } else if (worse(heap[0]!, item)) {
      heap[0] = item;
      siftDown(0);
    }
  });
  return heap.sort((a, b) => (worse(a, b) ? 1 : worse(b, a) ? -1 : 0));
}
