import { describe, expect, it } from 'vitest';
import { finishVector, pool } from '../src/pooling/index.js';

// Two sequences, seqLen 3, dim 2. Row 0: real tokens at 0..1 (right padding); row 1: real tokens at 1..2 (left padding).
const hidden = Float32Array.from([
  1,
  2,
  3,
  4,
  99,
  99, // row 0: t0=(1,2) t1=(3,4) pad
  99,
  99,
  5,
  -6,
  7,
  8, // row 1: pad t1=(5,-6) t2=(7,8)
]);
const spans = [
  { start: 0, length: 2 },
  { start: 1, length: 2 },
];

describe('pooling', () => {
  it('mean ignores padding on either side', () => {
    expect(Array.from(pool('mean', hidden, 3, 2, spans))).toEqual([2, 3, 6, 1]);
  });
  it('cls takes the first real token, last the last real token', () => {
    expect(Array.from(pool('cls', hidden, 3, 2, spans))).toEqual([1, 2, 5, -6]);
    expect(Array.from(pool('last', hidden, 3, 2, spans))).toEqual([3, 4, 7, 8]);
  });
  it('max is element-wise over real tokens only', () => {
    expect(Array.from(pool('max', hidden, 3, 2, spans))).toEqual([3, 4, 7, 8]);
    const neg = Float32Array.from([-5, -1, -2, -7, 100, 100]);
    expect(Array.from(pool('max', neg, 3, 2, [{ start: 0, length: 2 }]))).toEqual([-2, -1]);
  });
  it('skip leaves leading prompt tokens out of mean, but never all tokens', () => {
    expect(Array.from(pool('mean', hidden, 3, 2, [{ start: 0, length: 2, skip: 1 }]))).toEqual([3, 4]);
    expect(Array.from(pool('mean', hidden, 3, 2, [{ start: 0, length: 2, skip: 5 }]))).toEqual([3, 4]);
  });
  it('finishVector truncates then renormalizes', () => {
    const v = Float32Array.from([3, 4, 12]);
    expect(Array.from(finishVector(v, 2, true))).toEqual([0.6000000238418579, 0.800000011920929]);
    expect(Array.from(finishVector(v, 3, false))).toEqual([3, 4, 12]);
    const unit = finishVector(v, 3, true);
    expect(Math.hypot(...unit)).toBeCloseTo(1, 6);
    expect(Array.from(finishVector(new Float32Array(3), 3, true))).toEqual([0, 0, 0]);
  });
});
