/** Fixtures and small numeric helpers for the ONNX codec / splitter / quantizer tests. */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type ort from 'onnxruntime-node';
import { pool } from '../../src/pooling/index.js';
import { padFeeds } from '../../src/runtime/feeds.js';

export const ROOT = resolve(import.meta.dirname, '../..');
export const TINY_BERT_DIR = join(ROOT, 'tests/fixtures/models/tiny-bert');
export const TINY_DECODER_DIR = join(ROOT, 'tests/fixtures/models/tiny-decoder');
export const TINY_BERT = join(TINY_BERT_DIR, 'onnx/model.onnx');
export const TINY_DECODER = join(TINY_DECODER_DIR, 'onnx/model.onnx');
export const DEFAULT_MODEL = join(ROOT, 'models/default/model.onnx');
export const MINILM = join(ROOT, 'models/minilm-shaped/onnx/model.onnx');
export const hasMinilm = existsSync(MINILM);

export interface BertReference {
  token_ids: number[][];
  pooled: Record<'mean' | 'cls' | 'max' | 'last', number[][]>;
  layers: Record<string, Record<'mean' | 'cls', number[][]>>;
}

export interface DecoderReference {
  token_ids: number[][];
  pooled: { last: number[][] };
  layers: Record<string, Record<'last_raw' | 'last_normed', number[][]>>;
  token_prepending: { placeholder_id: number; first_layer: number; last_layer: number; token_ids: number[][]; last: number[][] };
}

export function readReference<T>(modelDir: string): T {
  return JSON.parse(readFileSync(join(modelDir, 'reference.json'), 'utf8')) as T;
}

export function tempDir(prefix = 'onnx-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  logSeverityLevel: 3,
};

export interface Batch {
  feeds: Record<string, ort.Tensor>;
  seqLen: number;
  /** Start of each row's real tokens. */
  starts: number[];
  lengths: number[];
}

/** A padded batch as the worker builds it (src/runtime/feeds.ts), for a graph with int64 inputs. */
export function makeBatch(ids: number[][], side: 'right' | 'left', inputs: readonly string[]): Batch {
  const { feeds, seqLen, starts } = padFeeds(ids, { names: new Set(inputs), int32: new Set() }, { side });
  return { feeds, seqLen, starts, lengths: ids.map((r) => r.length) };
}

/** Mean over each row's real tokens of a [B, S, H] tensor (the service's own mean pooling). */
export function meanPool(t: ort.Tensor, batch: Batch): Float32Array[] {
  const [B, S, H] = t.dims as number[];
  const spans = batch.lengths.map((length, b) => ({ start: batch.starts[b]!, length }));
  const pooled = pool('mean', t.data as Float32Array, S!, H!, spans);
  return Array.from({ length: B! }, (_, b) => pooled.subarray(b * H!, (b + 1) * H!));
}

/** Each row's last real token of a [B, S, H] tensor. */
export function lastToken(t: ort.Tensor, batch: Batch): Float32Array[] {
  const [, S, H] = t.dims as number[];
  const data = t.data as Float32Array;
  return batch.lengths.map((len, b) => {
    const s = batch.starts[b]! + len - 1;
    return data.slice((b * S! + s) * H!, (b * S! + s + 1) * H!);
  });
}

export { cosine } from '../helpers.js';

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
