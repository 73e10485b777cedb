import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Logger } from '../../src/index/index.js';

/**
 * Test-only data: a seeded PRNG and an embedding-shaped vector distribution.
 * Shared by the tests and benchmarks/hnsw-recall.ts. No Math.random anywhere,
 * so every failure reproduces.
 */

/** sfc32: small, fast, 128-bit state, good enough statistical quality for test data. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare: number | undefined;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 16; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box–Muller, caching the second value). */
  gauss(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}

export interface EmbeddingSpaceOptions {
  dims?: number;
  latent?: number;
  clusters?: number;
  /** Std-dev of points around their cluster centre, in latent units (centres are N(0, 1)). */
  spread?: number;
  /** Std-dev of isotropic noise added per output dimension, relative to a unit vector's per-dim scale. */
  noise?: number;
}

/**
 * Vectors shaped like sentence embeddings: low intrinsic dimension and
 * clustered. A Gaussian mixture in a `latent`-d space, mapped linearly to
 * `dims` by a fixed random matrix, plus small isotropic noise, normalized.
 */
export class EmbeddingSpace {
  readonly dims: number;
  private readonly latent: number;
  private readonly centres: Float64Array[];
  private readonly matrix: Float64Array; // dims × latent, row-major
  private readonly spread: number;
  private readonly noise: number;

  constructor(seed: number, opts: EmbeddingSpaceOptions = {}) {
    this.dims = opts.dims ?? 384;
    this.latent = opts.latent ?? 16;
    const clusters = opts.clusters ?? 50;
    this.spread = opts.spread ?? 0.35;
    this.noise = (opts.noise ?? 0.15) / Math.sqrt(this.dims);
    const rng = new Rng(seed);
    this.centres = Array.from({ length: clusters }, () => Float64Array.from({ length: this.latent }, () => rng.gauss()));
    const scale = 1 / Math.sqrt(this.latent);
    this.matrix = Float64Array.from({ length: this.dims * this.latent }, () => rng.gauss() * scale);
  }

  get clusterCount(): number {
    return this.centres.length;
  }

  /** `n` unit vectors and the cluster each came from. */
  sample(n: number, seed: number): { vectors: Float32Array[]; clusters: number[] } {
    const rng = new Rng(seed);
    const vectors: Float32Array[] = [];
    const clusters: number[] = [];
    const z = new Float64Array(this.latent);
    for (let i = 0; i < n; i++) {
      const c = rng.int(this.centres.length);
      const centre = this.centres[c]!;
      for (let j = 0; j < this.latent; j++) z[j] = centre[j]! + this.spread * rng.gauss();
      const v = new Float32Array(this.dims);
      let norm2 = 0;
      for (let r = 0; r < this.dims; r++) {
        let s = 0;
        const row = r * this.latent;
        for (let j = 0; j < this.latent; j++) s += this.matrix[row + j]! * z[j]!;
        // Noise relative to the signal's per-dimension scale (|Wz| ≈ |z|).
        s = s / Math.sqrt(this.latent * (1 + this.spread ** 2)) + this.noise * rng.gauss();
        v[r] = s;
        norm2 += s * s;
      }
      const inv = 1 / Math.sqrt(norm2);
      for (let r = 0; r < this.dims; r++) v[r] = v[r]! * inv;
      vectors.push(v);
      clusters.push(c);
    }
    return { vectors, clusters };
  }
}

/** Uniformly random unit vectors: no structure at all, the worst case for HNSW. */
export function uniformUnitVectors(n: number, dims: number, seed: number): Float32Array[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const v = Float32Array.from({ length: dims }, () => rng.gauss());
    let n2 = 0;
    for (const x of v) n2 += x * x;
    const inv = 1 / Math.sqrt(n2);
    for (let i = 0; i < dims; i++) v[i] = v[i]! * inv;
    return v;
  });
}

export async function makeTempDir(prefix = 'vecstore-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string | undefined;
}

/** A Logger that records what it is told, to assert on warnings. */
export function recordingLogger(): Logger & { entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const at =
    (level: LogEntry['level']) =>
    (obj: Record<string, unknown>, msg?: string): void => {
      entries.push({ level, obj, msg });
    };
  return { entries, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
