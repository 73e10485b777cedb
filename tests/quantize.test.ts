import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { quantize, rangesOf } from '../src/pooling/index.js';

const PYTHON = '/usr/bin/python3';
const hasNumpy = spawnSync(PYTHON, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;

describe('quantized embeddings (hand computation)', () => {
  // Range [0, 255] makes the step exactly 1, so every value below is computed by hand.
  const unit = { min: Float32Array.from([0, 0, 0, 0, 0]), max: Float32Array.from([255, 255, 255, 255, 255]) };
  const v = [0, 127.5, 255, 300, -5];

  it('uint8: (x - min) / step, truncated, clamped to 0..255', () => {
    expect(Array.from(quantize(v, 'uint8', unit))).toEqual([0, 127, 255, 255, 0]);
  });
  it('int8: (x - min) / step - 128, truncated toward zero, clamped to -128..127', () => {
    // 127.5 - 128 = -0.5 truncates to 0 (numpy astype), not -1 (floor).
    expect(Array.from(quantize(v, 'int8', unit))).toEqual([-128, 0, 127, 127, -128]);
  });
  it('ranges are per dimension, and a single-point range maps to the bottom', () => {
    const r = rangesOf([
      [-1, 0, 0.5],
      [1, 2, 0.5],
      [0, 1, 0.5],
    ]);
    expect(Array.from(r.min)).toEqual([-1, 0, 0.5]);
    expect(Array.from(r.max)).toEqual([1, 2, 0.5]);
    // dim 0: (0 + 1) / (2 / 255) = 127.5 → 127; dim 1: (1 - 0) / (2 / 255) = 127.5 → 127.
    expect(Array.from(quantize([0, 1, 0.5], 'uint8', r))).toEqual([127, 127, 0]);
    expect(Array.from(quantize([0, 1, 0.5], 'int8', r))).toEqual([0, 0, -128]);
  });
  it('binary: one bit per dimension (> 0), MSB first, last byte zero-padded; binary = byte - 128', () => {
    const x = [0.5, -1, 0, 2, 3, -0.1, 0.2, 1, 9];
    // bits 1 0 0 1 1 0 1 1 = 0b10011011 = 155; then 1 (+ 7 padding zeros) = 128
    expect(Array.from(quantize(x, 'ubinary'))).toEqual([155, 128]);
    expect(Array.from(quantize(x, 'binary'))).toEqual([27, 0]);
  });
  it('int8 and uint8 need ranges', () => {
    expect(() => quantize([1], 'int8')).toThrow(/calibration/);
  });
});

describe.skipIf(!hasNumpy)('quantized embeddings match sentence-transformers quantize_embeddings (numpy)', () => {
  it('int8, uint8, binary, ubinary on random float32 vectors', () => {
    // The body of sentence_transformers.quantization.quantize_embeddings, with calibration embeddings.
    const script = `
import json, numpy as np
rng = np.random.default_rng(7)
cal = rng.standard_normal((200, 64)).astype(np.float32) * 0.1
emb = np.clip(rng.standard_normal((40, 64)).astype(np.float32) * 0.1, cal.min(0), cal.max(0))
ranges = np.vstack((np.min(cal, axis=0), np.max(cal, axis=0)))
starts = ranges[0, :]
steps = (ranges[1, :] - ranges[0, :]) / 255
out = {
  "cal": cal.tolist(), "emb": emb.tolist(),
  "uint8": ((emb - starts) / steps).astype(np.uint8).tolist(),
  "int8": ((emb - starts) / steps - 128).astype(np.int8).tolist(),
  "binary": (np.packbits(emb > 0).reshape(emb.shape[0], -1) - 128).astype(np.int8).tolist(),
  "ubinary": np.packbits(emb > 0).reshape(emb.shape[0], -1).tolist(),
}
print(json.dumps(out))
`;
    const run = spawnSync(PYTHON, ['-c', script], { encoding: 'utf8', maxBuffer: 1 << 26 });
    expect(run.status, run.stderr).toBe(0);
    const ref = JSON.parse(run.stdout) as Record<'cal' | 'emb' | 'uint8' | 'int8' | 'binary' | 'ubinary', number[][]>;
    const ranges = rangesOf(ref.cal.map((r) => Float32Array.from(r)));
    ref.emb.forEach((row, i) => {
      const v = Float32Array.from(row);
      for (const type of ['int8', 'uint8', 'binary', 'ubinary'] as const) {
        expect(Array.from(quantize(v, type, ranges)), `${type} row ${i}`).toEqual(ref[type][i]);
      }
    });
  });
});
