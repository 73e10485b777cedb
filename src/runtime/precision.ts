/**
 * Which graph the workers serve: fp32, or int8 (weights of every constant MatMul/Gemm quantized,
 * activations quantized at run time by ONNX Runtime's DynamicQuantizeMatMul). An int8 graph is
 * taken from the model directory when it ships one (`model_quantized.onnx`), else made from the
 * fp32 graph once and cached beside it. Either way a quality guard compares int8 and fp32
 * embeddings of fixed sentences and serves fp32 instead when they agree less than the floor.
 *
 * Weights are quantized with |q| ≤ 64 (`s8-reduced`, see quantize.ts WeightFormat) on every CPU:
 * no u8×s8 pair sum can then clip, so the int8 graph computes the same integers with or without
 * AVX-512 VNNI (measured on an emulated AVX2-only x86, MiniLM-shaped: full-range weights clip and
 * agree with fp32 at 0.990 mean / 0.981 worst sentence; reduced ones at 0.994 / 0.985). Same speed on every kernel (same instructions); the
 * cost is one bit of weight precision (agreement 0.9973 → 0.9938 on the MiniLM-shaped model on a
 * VNNI CPU). The u8 format also never clips, but runs at 1.31× fp32 instead of 2.1× on VNNI.
 * The guard checks the mean AND the worst probe sentence, so a loss that only some inputs trigger
 * cannot hide in an average over easy ones.
 */
import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { graphInputs, padFeeds } from './feeds.js';
import type { ModelSpec } from './model-dir.js';
import { cacheKey, cacheRoot, loadForSplit } from './onnx/cache.js';
import { int8PairsSaturate } from './onnx/int8-kernel.js';
import { saveModel } from './onnx/model.js';
import { PROBE_SENTENCES, tokenize } from './onnx/probe.js';
import { agreement, DEFAULT_WEIGHT_FORMAT, quantizeModel, type WeightFormat } from './onnx/quantize.js';

/**
 * The worst probe sentence may agree this much less than the floor on the mean. Measured on the
 * MiniLM-shaped model (65 probe sentences, benchmarks/RESULTS.md): sound int8 graphs' worst
 * sentences sit 0.005–0.01 below their mean; the guard refuses anything whose worst sentence falls
 * more than 0.02 below the floor even when the mean passes.
 */
export const WORST_SENTENCE_MARGIN = 0.02;

export type Quantize = 'none' | 'int8';

export interface PrecisionChoice {
  /** The graph the workers load. */
  onnxPath: string;
  precision: 'fp32' | 'int8';
  /** Where the int8 graph came from, when one was considered. */
  source: 'model directory' | 'quantized at load' | 'cache' | null;
  /** Mean cosine of int8 vs fp32 mean-pooled outputs on the probe sentences, when measured. */
  agreement: number | null;
  /** The lowest of those cosines (the worst probe sentence), when measured. */
  worst: number | null;
  floor: number;
  /** How quantized-at-load weights are stored (null for fp32 or a shipped int8 graph). */
  weightFormat: WeightFormat | null;
  /** Whether this CPU's u8×s8 int8 kernel clips pair sums (measured; null when int8 is not in use). */
  pairSaturation: boolean | null;
  /** Set when int8 was asked for but fp32 is served: why. */
  fallback: string | null;
}

/** Cache file for a quantized copy of `onnxPath`, keyed by the fp32 file's size and mtime. */
function cachePath(onnxPath: string, format: WeightFormat): string {
  const dir = path.join(cacheRoot(onnxPath, 'int8'), cacheKey(onnxPath, `int8-v2-${format}`));
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, 'model_quantized.onnx');
}

/** The int8 graph for this model: shipped, cached, or made now (written atomically). */
function int8Graph(fp32Path: string, format: WeightFormat): { file: string; source: PrecisionChoice['source'] } {
  const shipped = path.join(path.dirname(fp32Path), 'model_quantized.onnx');
  if (fs.existsSync(shipped)) return { file: shipped, source: 'model directory' };
  const cached = cachePath(fp32Path, format);
  if (fs.existsSync(cached)) return { file: cached, source: 'cache' };
  const { model } = quantizeModel(loadForSplit(fp32Path), { perChannel: true, weightFormat: format });
  saveModel(model, cached);
  return { file: cached, source: 'quantized at load' };
}

/** Mean and worst cosine between two graphs' mean-pooled outputs on the fixed probe sentences. */
async function measureAgreement(spec: ModelSpec, fp32Path: string, int8Path: string): Promise<{ mean: number; min: number }> {
  const options: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3 };
  const fp32 = await ort.InferenceSession.create(fp32Path, options);
  const int8 = await ort.InferenceSession.create(int8Path, options);
  try {
    const ids = await tokenize(spec.tokenizerPath, PROBE_SENTENCES, Math.min(128, spec.maxLength));
    return await agreement(fp32, int8, padFeeds(ids, graphInputs(fp32)).feeds);
  } finally {
    await fp32.release();
    await int8.release();
  }
}

export async function choosePrecision(
  spec: ModelSpec,
  quantize: Quantize,
  floor: number,
  format: WeightFormat = DEFAULT_WEIGHT_FORMAT,
): Promise<PrecisionChoice> {
  const fp32: PrecisionChoice = {
    onnxPath: spec.onnxPath,
    precision: 'fp32',
    source: null,
    agreement: null,
    worst: null,
    floor,
    weightFormat: null,
    pairSaturation: null,
    fallback: null,
  };
  // A quantized graph chosen explicitly (MODEL_VARIANT=quantized) is served as it is.
  if (path.basename(spec.onnxPath) === 'model_quantized.onnx')
    return { ...fp32, precision: 'int8', source: 'model directory', pairSaturation: await int8PairsSaturate() };
  if (quantize === 'none') return fp32;
  const { file, source } = int8Graph(spec.onnxPath, format);
  const weightFormat = source === 'model directory' ? null : format;
  const measured = await measureAgreement(spec, spec.onnxPath, file);
  const facts = { source, agreement: measured.mean, worst: measured.min, weightFormat, pairSaturation: await int8PairsSaturate() };
  if (measured.mean < floor) {
    return { ...fp32, ...facts, fallback: `int8 agrees with fp32 at ${measured.mean.toFixed(4)}, under the floor ${floor}` };
  }
  if (measured.min < floor - WORST_SENTENCE_MARGIN) {
    return {
      ...fp32,
      ...facts,
      fallback: `int8 agrees with fp32 at ${measured.min.toFixed(4)} on its worst probe sentence, under the floor ${floor} − ${WORST_SENTENCE_MARGIN}`,
    };
  }
  return { ...fp32, ...facts, onnxPath: file, precision: 'int8' };
}
