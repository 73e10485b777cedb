import type { Metric, StoragePrecision } from './types.js';

/**
 * Full-width vectors of a funnel collection, kept compact for rescoring and
 * for returning vectors. Indexed by label (the collection's dense label
 * space); one contiguous typed array per field, grown by doubling.
 *
 * Encodings (per vector of d dimensions):
 * - float32: 4·d bytes, exact (float32 is what the store keeps everywhere).
 * - float16: 2·d bytes, IEEE half precision, round to nearest; relative error
 *   ≤ 2^-11 per component. Components beyond ±65504 cannot be stored (422 at
 *   validation, see `storableError`).
 * - int8: d + 4 bytes, symmetric per-vector scale s = max|x| / 127,
 *   q = round(x / s); absolute error ≤ s / 2 per component.
 */

export const BYTES_PER_COMPONENT: Record<StoragePrecision, number> = { float32: 4, float16: 2, int8: 1 };
export const FLOAT16_MAX = 65504;

// ---------------------------------------------------------------------------
// float16 codec

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function toFloat16(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = ((bits >>> 23) & 0xff) - 127 + 15;
  const mant = bits & 0x7fffff;
  if (exp >= 31) return sign | 0x7c00; // overflow → ±Inf (validation keeps it from happening)
  if (exp <= 0) {
    if (exp < -10) return sign; // underflow → ±0
    const m = mant | 0x800000;
    const shift = 14 - exp;
    let h = m >>> shift;
    if ((m >>> (shift - 1)) & 1) h++;
    return sign | h;
  }
  let h = sign | (exp << 10) | (mant >>> 13);
  if (mant & 0x1000) h++; // round half up; a carry correctly bumps the exponent
  return h;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** All 65536 half values as float32: dequantizing is one lookup per component. */
const HALF_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = halfToFloat(h);
  return t;
})();

export function fromFloat16(h: number): number {
  return HALF_TABLE[h]!;
}

/** Why this vector cannot be stored at `precision`, or undefined. */
export function storableError(vector: Float32Array, precision: StoragePrecision): string | undefined {
  if (precision !== 'float16') return undefined;
  for (let i = 0; i < vector.length; i++) {
    if (Math.abs(vector[i]!) > FLOAT16_MAX) return `component ${i} (${vector[i]}) is beyond float16's range (±${FLOAT16_MAX})`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------

const INITIAL_CAPACITY = 1024;

export class VectorStorage {
  private data: Float32Array | Uint16Array | Int8Array;
  /** int8 only: per-vector scale. */
  private scales: Float32Array;
  private capacity: number;
  private readonly scratch: Float32Array;

  constructor(
    readonly precision: StoragePrecision,
    readonly dimensions: number,
    capacity = INITIAL_CAPACITY,
  ) {
    this.capacity = Math.max(1, capacity);
    this.data = this.alloc(this.capacity);
    this.scales = new Float32Array(precision === 'int8' ? this.capacity : 0);
    this.scratch = new Float32Array(dimensions);
  }

  private alloc(n: number): Float32Array | Uint16Array | Int8Array {
    const len = n * this.dimensions;
    return this.precision === 'float32' ? new Float32Array(len) : this.precision === 'float16' ? new Uint16Array(len) : new Int8Array(len);
  }

  /** Bytes one vector takes. */
  get bytesPerVector(): number {
    return this.dimensions * BYTES_PER_COMPONENT[this.precision] + (this.precision === 'int8' ? 4 : 0);
  }

  /** Grows (doubling) so labels below `labels` fit. */
  ensureCapacity(labels: number): void {
    if (labels <= this.capacity) return;
    let next = this.capacity;
    while (next < labels) next *= 2;
    const data = this.alloc(next);
    data.set(this.data as never);
    this.data = data;
    if (this.precision === 'int8') {
      const scales = new Float32Array(next);
      scales.set(this.scales);
      this.scales = scales;
    }
    this.capacity = next;
  }

  set(label: number, v: Float32Array): void {
    this.ensureCapacity(label + 1);
    const d = this.dimensions;
    const off = label * d;
    if (this.precision === 'float32') {
      (this.data as Float32Array).set(v, off);
    } else if (this.precision === 'float16') {
      const data = this.data as Uint16Array;
      for (let i = 0; i < d; i++) data[off + i] = toFloat16(v[i]!);
    } else {
      let max = 0;
      for (let i = 0; i < d; i++) max = Math.max(max, Math.abs(v[i]!));
      const scale = max / 127;
      const data = this.data as Int8Array;
      const inv = scale > 0 ? 1 / scale : 0;
      for (let i = 0; i < d; i++) data[off + i] = Math.round(v[i]! * inv);
      this.scales[label] = scale;
    }
  }

  /** Copies one vector's stored bytes from another storage of the same shape (compaction). */
  copyFrom(other: VectorStorage, fromLabel: number, toLabel: number): void {
    this.ensureCapacity(toLabel + 1);
    const d = this.dimensions;
    (this.data as Int8Array).set((other.data as Int8Array).subarray(fromLabel * d, fromLabel * d + d), toLabel * d);
    if (this.precision === 'int8') this.scales[toLabel] = other.scales[fromLabel]!;
  }

  /** The vector as stored (dequantized) into `out` (a fresh array by default). */
  get(label: number, out: Float32Array = new Float32Array(this.dimensions)): Float32Array {
    const d = this.dimensions;
    const off = label * d;
    if (this.precision === 'float32') {
      out.set((this.data as Float32Array).subarray(off, off + d));
    } else if (this.precision === 'float16') {
      const data = this.data as Uint16Array;
      for (let i = 0; i < d; i++) out[i] = HALF_TABLE[data[off + i]!]!;
    } else {
      const data = this.data as Int8Array;
      const s = this.scales[label]!;
      for (let i = 0; i < d; i++) out[i] = data[off + i]! * s;
    }
    return out;
  }

  /**
   * Higher-is-better score of a stored vector against a full-width query:
   * cosine (the stored vector's own norm divided out, so quantization does
   * not bias it), inner product, or negative Euclidean distance.
   */
  score(label: number, query: Float32Array, metric: Metric): number {
    const v = this.get(label, this.scratch);
    const d = this.dimensions;
    if (metric === 'l2') {
      let s = 0;
      for (let i = 0; i < d; i++) {
        const x = query[i]! - v[i]!;
        s += x * x;
      }
      return -Math.sqrt(s);
    }
    let dot = 0;
    let norm = 0;
    for (let i = 0; i < d; i++) {
      dot += query[i]! * v[i]!;
      norm += v[i]! * v[i]!;
    }
    return metric === 'cosine' ? (norm > 0 ? dot / Math.sqrt(norm) : 0) : dot;
  }

  /** The bytes of labels [0, count): the data, then (int8) the scales. For snapshots. */
  chunks(count: number): Buffer[] {
    const d = this.dimensions;
    const bytes = BYTES_PER_COMPONENT[this.precision];
    const out = [Buffer.from(this.data.buffer, this.data.byteOffset, count * d * bytes)];
    if (this.precision === 'int8') out.push(Buffer.from(this.scales.buffer, this.scales.byteOffset, count * 4));
    return out;
  }

  /** Size in bytes of `chunks(count)`. */
  static fileBytes(precision: StoragePrecision, dimensions: number, count: number): number {
    return count * (dimensions * BYTES_PER_COMPONENT[precision] + (precision === 'int8' ? 4 : 0));
  }

  /**
   * The bytes `chunks(count)` returned, as views over this storage's own arrays, so a
   * snapshot file can be read straight into them (no second copy of a million vectors).
   */
  targets(count: number): Uint8Array[] {
    this.ensureCapacity(count);
    const dataBytes = count * this.dimensions * BYTES_PER_COMPONENT[this.precision];
    const out = [new Uint8Array(this.data.buffer, this.data.byteOffset, dataBytes)];
    if (this.precision === 'int8') out.push(new Uint8Array(this.scales.buffer, this.scales.byteOffset, count * 4));
    return out;
  }

  /** The inverse of `chunks`: `buf` holds exactly `fileBytes(precision, dimensions, count)` bytes. */
  static fromBytes(precision: StoragePrecision, dimensions: number, count: number, buf: Buffer): VectorStorage {
    const s = new VectorStorage(precision, dimensions, Math.max(INITIAL_CAPACITY, count));
    const dataBytes = count * dimensions * BYTES_PER_COMPONENT[precision];
    new Uint8Array(s.data.buffer, s.data.byteOffset, dataBytes).set(buf.subarray(0, dataBytes));
    if (precision === 'int8') new Uint8Array(s.scales.buffer, 0, count * 4).set(buf.subarray(dataBytes, dataBytes + count * 4));
    return s;
  }
}

/**
 * The Matryoshka prefix the graph is built on: the first `n` components,
 * renormalized for cosine (the full vector is already unit length, its prefix is not).
 */
export function prefixVector(v: Float32Array, n: number, metric: Metric): Float32Array {
  const p = v.slice(0, n);
  if (metric === 'cosine') {
    let norm = 0;
    for (let i = 0; i < n; i++) norm += p[i]! * p[i]!;
    if (norm > 0) {
      const inv = 1 / Math.sqrt(norm);
      for (let i = 0; i < n; i++) p[i] = p[i]! * inv;
    }
  }
  return p;
}
