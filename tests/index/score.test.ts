import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { checkFrameHeader, encodeFrame, payloadCrcMatches } from '../../src/index/framing.js';
import { exactScore, scoreCandidates, ValidationError } from '../../src/index/index.js';

const f = (...xs: number[]) => Float32Array.from(xs);

describe('scoreCandidates', () => {
  const query = f(1, 2, 2); // |q| = 3
  const candidates = [f(2, 0, 0), f(0, 3, 4), f(1, 2, 2), f(-1, -2, -2), f(0, 0, 0)];

  it('ip: dot products, best first', () => {
    // dots: 2, 14, 9, -9, 0
    expect(scoreCandidates(query, candidates, 'ip', 5)).toEqual([
      { index: 1, score: 14 },
      { index: 2, score: 9 },
      { index: 0, score: 2 },
      { index: 4, score: 0 },
      { index: 3, score: -9 },
    ]);
  });

  it('cosine: dot over norms, zero vectors score 0', () => {
    // cos: 2/(3*2) = 1/3, 14/(3*5) = 14/15, 1, -1, 0
    const got = scoreCandidates(query, candidates, 'cosine', 3);
    expect(got.map((g) => g.index)).toEqual([2, 1, 0]);
    expect(got[0]!.score).toBeCloseTo(1, 12);
    expect(got[1]!.score).toBeCloseTo(14 / 15, 12);
    expect(got[2]!.score).toBeCloseTo(1 / 3, 12);
    expect(scoreCandidates(query, candidates, 'cosine', 5).map((g) => g.index)).toEqual([2, 1, 0, 4, 3]);
  });

  it('l2: negative Euclidean distance (not squared)', () => {
    // distances: sqrt(1+4+4)=3, sqrt(1+1+4)=sqrt(6), 0, 6, 3
    const got = scoreCandidates(query, candidates, 'l2', 5);
    expect(got.map((g) => g.index)).toEqual([2, 1, 0, 4, 3]); // tie 0/4 at -3: lower index first
    expect(got.map((g) => g.score)).toEqual([-0, -Math.sqrt(6), -3, -3, -6]);
  });

  it('returns at most k, handles k = 0 and k > n, and matches exactScore', () => {
    expect(scoreCandidates(query, candidates, 'ip', 0)).toEqual([]);
    expect(scoreCandidates(query, candidates, 'ip', 100)).toHaveLength(5);
    expect(scoreCandidates(query, [], 'ip', 3)).toEqual([]);
    for (const metric of ['ip', 'cosine', 'l2'] as const) {
      for (const [i, c] of candidates.entries()) {
        const s = scoreCandidates(query, candidates, metric, 5).find((x) => x.index === i)!.score;
        expect(s).toBeCloseTo(exactScore(query, c, metric), 12);
      }
    }
  });

  it('keeps the top k of a long list (heap path) in order', () => {
    const many = Array.from({ length: 1000 }, (_, i) => f(((i * 7919) % 1000) / 1000, 1));
    const got = scoreCandidates(f(1, 0), many, 'ip', 10);
    expect(got.map((g) => g.score)).toEqual([0.999, 0.998, 0.997, 0.996, 0.995, 0.994, 0.993, 0.992, 0.991, 0.99].map(Math.fround));
  });

  it('rejects candidates of the wrong length and bad k', () => {
    expect(() => scoreCandidates(query, [f(1, 2)], 'ip', 1)).toThrow(ValidationError);
    expect(() => scoreCandidates(query, candidates, 'ip', -1)).toThrow(ValidationError);
  });
});

describe('crc32 and framing', () => {
  it('zlib.crc32 gives the standard check value and continues across chunks (the store relies on both)', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    const data = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 31) & 0xff));
    expect(crc32(data.subarray(1000), crc32(data.subarray(0, 1000)))).toBe(crc32(data));
  });

  it('detects damaged frames', () => {
    const frame = encodeFrame(Buffer.from('hello'));
    const header = frame.subarray(0, 8);
    expect(checkFrameHeader(header, 5)).toEqual({ ok: true, length: 5 });
    expect(checkFrameHeader(header, 4).ok).toBe(false);
    expect(payloadCrcMatches(header, frame.subarray(8))).toBe(true);
    expect(payloadCrcMatches(header, Buffer.from('hellp'))).toBe(false);
    expect(checkFrameHeader(Buffer.alloc(8), 100)).toEqual({ ok: false, reason: 'zero-length frame' });
  });
});
