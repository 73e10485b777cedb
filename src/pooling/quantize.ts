/**
 * Quantized embedding outputs with sentence-transformers' `quantize_embeddings` semantics:
 *
 * - `int8` / `uint8`: each dimension d is mapped from its calibrated range [min_d, max_d] onto 256
 *   steps: `step = (max_d - min_d) / 255`, `uint8 = trunc((x - min_d) / step)`,
 *   `int8 = trunc((x - min_d) / step - 128)` (numpy's `astype` truncates toward zero). Values outside
 *   the calibrated range are clamped to the type's range (numpy would wrap around, which is never
 *   what a caller wants), and a dimension whose range is a single point maps to the bottom.
 * - `binary` / `ubinary`: one bit per dimension, 1 where the value is > 0, packed 8 to a byte with the
 *   first dimension in the most significant bit (`np.packbits`), the last byte zero-padded;
 *   `ubinary` is the byte, `binary` the byte − 128 as a signed byte.
 */

export type QuantizedType = 'int8' | 'uint8' | 'binary' | 'ubinary';
export type EmbeddingType = 'float' | QuantizedType;

export const QUANTIZED_TYPES: readonly QuantizedType[] = ['int8', 'uint8', 'binary', 'ubinary'];

/** Per-dimension calibration ranges: the minimum and maximum seen on the calibration set. */
export interface QuantizationRanges {
  min: Float32Array;
  max: Float32Array;
}

/** The per-dimension minimum and maximum of a set of vectors (all of one length). */
export function rangesOf(vectors: readonly ArrayLike<number>[]): QuantizationRanges {
  if (vectors.length === 0) throw new Error('rangesOf needs at least one vector');
  const dims = vectors[0]!.length;
  const min = new Float32Array(dims).fill(Infinity);
  const max = new Float32Array(dims).fill(-Infinity);
  for (const v of vectors) {
    if (v.length !== dims) throw new Error(`rangesOf: vectors of lengths ${dims} and ${v.length}`);
    for (let d = 0; d < dims; d++) {
      const x = v[d]!;
      if (x < min[d]!) min[d] = x;
      if (x > max[d]!) max[d] = x;
    }
  }
  return { min, max };
}

/** Scalar quantization of one vector onto 256 steps per dimension (`int8` or `uint8`). */
export function quantizeScalar(vector: ArrayLike<number>, ranges: QuantizationRanges, type: 'int8' | 'uint8'): Int8Array | Uint8Array {
  const dims = vector.length;
  if (ranges.min.length < dims) throw new Error(`quantization ranges have ${ranges.min.length} dimensions, the vector ${dims}`);
  const out = type === 'int8' ? new Int8Array(dims) : new Uint8Array(dims);
  const offset = type === 'int8' ? 128 : 0;
  const lo = -offset;
  const hi = 255 - offset;
  for (let d = 0; d < dims; d++) {
    // float32 arithmetic, as numpy does on float32 embeddings.
    const start = ranges.min[d]!;
    const step = Math.fround(Math.fround(ranges.max[d]! - start) / 255);
    const scaled = step > 0 ? Math.fround(Math.fround(Math.fround(vector[d]! - start) / step) - offset) : lo;
    out[d] = Math.min(hi, Math.max(lo, Math.trunc(Number.isNaN(scaled) ? lo : scaled)));
  }
  return out;
}

/** Sign-bit packing of one vector: 1 bit per dimension (> 0), most significant bit first. */
export function quantizeBinary(vector: ArrayLike<number>, type: 'binary' | 'ubinary'): Int8Array | Uint8Array {
  const bytes = new Uint8Array(Math.ceil(vector.length / 8));
  for (let d = 0; d < vector.length; d++) {
    if (vector[d]! > 0) bytes[d >> 3]! |= 0x80 >> (d & 7);
  }
  if (type === 'ubinary') return bytes;
  return Int8Array.from(bytes, (b) => b - 128);
}

/** Quantizes one finished (truncated, normalized) vector; `ranges` is needed for int8/uint8 only. */
export function quantize(vector: ArrayLike<number>, type: QuantizedType, ranges?: QuantizationRanges): Int8Array | Uint8Array {
  if (type === 'binary' || type === 'ubinary') return quantizeBinary(vector, type);
  if (!ranges) throw new Error(`${type} quantization needs calibration ranges`);
  return quantizeScalar(vector, ranges, type);
}

/** Bytes one vector of `dims` dimensions takes in each output type (float is float32). */
export function bytesPerVector(type: EmbeddingType, dims: number): number {
  if (type === 'float') return dims * 4;
  if (type === 'int8' || type === 'uint8') return dims;
  return Math.ceil(dims / 8);
}
