/** The evaluation metrics the quality floor (default-model.test.ts) and benchmarks/eval.ts rely on, against hand computations. */
import { describe, expect, it } from 'vitest';
import { spearman } from '../benchmarks/eval-lib.js';

describe('benchmarks/eval-lib spearman', () => {
  it('matches 1 − 6Σd²/(n(n²−1)) without ties', () => {
    // ranks differ by 0, 1, 1, 0: 1 − 6·2/(4·15) = 0.8
    expect(spearman([1, 2, 3, 4], [10, 30, 20, 40])).toBeCloseTo(0.8, 12);
    expect(spearman([1, 2, 3], [3, 2, 1])).toBeCloseTo(-1, 12);
  });

  it('gives tied values their average rank', () => {
    // ranks (1.5, 1.5, 3) vs (1, 2, 3): Pearson = 1.5 / √(1.5 · 2)
    expect(spearman([5, 5, 9], [1, 2, 3])).toBeCloseTo(1.5 / Math.sqrt(3), 12);
  });
});
