/**
 * Pooling of token states into one vector per sequence.
 *
 * Works on the padded [batch, seq, hidden] output of a transformer plus, per sequence, where its
 * real tokens sit. Padding may be on either side, so every function takes an explicit span
 * (`start`, `length`) instead of assuming the real tokens begin at column 0.
 */

export type PoolingMode = 'mean' | 'cls' | 'max' | 'last';

export const POOLING_MODES: readonly PoolingMode[] = ['mean', 'cls', 'max', 'last'];

/** Where one sequence's real tokens sit inside its padded row. */
export interface TokenSpan {
  /** Column of the first real token (0 with right padding, seq - length with left padding). */
  start: number;
  /** Number of real tokens. */
  length: number;
  /**
   * Leading real tokens to leave out of mean/max pooling: prompt or instruction tokens when the
   * model's pooling config says `include_prompt: false` (sentence-transformers semantics).
   */
  skip?: number;
}

/**
 * Pools `hidden` ([batch, seqLen, dim], row-major) into a [batch, dim] Float32Array.
 * CLS takes the first real token; last takes the last real token whatever the padding side.
 */
export function pool(mode: PoolingMode, hidden: Float32Array, seqLen: number, dim: number, spans: readonly TokenSpan[]): Float32Array {
  const out = new Float32Array(spans.length * dim);
  spans.forEach((span, b) => {
    if (span.length < 1) throw new Error(`sequence ${b} has no tokens`);
    const row = b * seqLen * dim;
    const dst = b * dim;
    if (mode === 'cls' || mode === 'last') {
      const t = mode === 'cls' ? span.start : span.start + span.length - 1;
      out.set(hidden.subarray(row + t * dim, row + (t + 1) * dim), dst);
      return;
    }
    // Never skip every token: a prompt that fills the whole window still has to pool to something.
    const skip = Math.min(span.skip ?? 0, span.length - 1);
    const first = span.start + skip;
    const end = span.start + span.length;
    if (mode === 'mean') {
      for (let t = first; t < end; t++) {
        const src = row + t * dim;
        for (let d = 0; d < dim; d++) out[dst + d]! += hidden[src + d]!;
      }
      const n = end - first;
      for (let d = 0; d < dim; d++) out[dst + d]! /= n;
    } else {
      out.set(hidden.subarray(row + first * dim, row + (first + 1) * dim), dst);
      for (let t = first + 1; t < end; t++) {
        const src = row + t * dim;
        for (let d = 0; d < dim; d++) {
          const v = hidden[src + d]!;
          if (v > out[dst + d]!) out[dst + d] = v;
        }
      }
    }
  });
  return out;
}

/**
 * Matryoshka truncation and L2 normalization of one pooled vector: keeps the first `dimensions`
 * values, then (when `normalize`) rescales to unit length. Returns a new array.
 */
export function finishVector(vector: Float32Array, dimensions: number, normalize: boolean): Float32Array {
  const out = vector.slice(0, dimensions);
  if (!normalize) return out;
  let sum = 0;
  for (let i = 0; i < out.length; i++) sum += out[i]! * out[i]!;
  const norm = Math.sqrt(sum);
  // A zero vector has no direction; leave it as zeros rather than produce NaNs.
  if (norm > 0) for (let i = 0; i < out.length; i++) out[i]! /= norm;
  return out;
}

/** Cosine similarity of two vectors (0 when either is all zeros). */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

/** The spans of real tokens an attention mask marks, one per row of a [batch, seqLen] mask (padding on either side). */
export function spansFromMask(mask: ArrayLike<number | bigint>, batch: number, seqLen: number): TokenSpan[] {
  const spans: TokenSpan[] = [];
  for (let b = 0; b < batch; b++) {
    let start = -1;
    let length = 0;
    for (let t = 0; t < seqLen; t++) {
      if (!Number(mask[b * seqLen + t])) continue;
      if (start < 0) start = t;
      length++;
    }
    spans.push({ start: Math.max(start, 0), length });
  }
  return spans;
}
