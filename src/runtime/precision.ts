/**
 * Which graph the workers serve: fp32, or int8 (weights of every constant MatMul/Gemm quantized,
 * activations quantized at run time by ONNX Runtime's DynamicQuantizeMatMul). An int8 graph is
 * taken from the model directory when it ships one (`model_quantized.onnx`), else made from the
 * fp32 graph once and cached beside it. Either way a quality guard compares int8 and fp32
 * embeddings of fixed sentences and serves fp32 instead when they agree less than the floor.
 */
import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { cacheKey, cacheRoot, loadForSplit } from './onnx/cache.js';
import { saveModel } from './onnx/model.js';
import { padFeeds, PROBE_SENTENCES, tokenize } from './onnx/probe.js';
import { agreement, quantizeModel } from './onnx/quantize.js';
import type { ModelSpec } from './model-dir.js';

export type Quantize = 'none' | 'int8';

export interface PrecisionChoice {
  /** The graph the workers load. */
  onnxPath: string;
  precision: 'fp32' | 'int8';
  /** Where the int8 graph came from, when one was considered. */
  source: 'model directory' | 'quantized at load' | 'cache' | null;
  /** Mean cosine of int8 vs fp32 mean-pooled outputs on the probe sentences, when measured. */
  agreement: number | null;
  floor: number;
  /** Set when int8 was asked for but fp32 is served: why. */
  fallback: string | null;
}

/** Cache file for a quantized copy of `onnxPath`, keyed by the fp32 file's size and mtime. */
function cachePath(onnxPath: string): string {
  const dir = path.join(cacheRoot(onnxPath, 'int8'), cacheKey(onnxPath, 'int8-v1'));
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, 'model_quantized.onnx');
}

/** The int8 graph for this model: shipped, cached, or made now (written atomically). */
function int8Graph(fp32Path: string): { file: string; source: PrecisionChoice['source'] } {
  const shipped = path.join(path.dirname(fp32Path), 'model_quantized.onnx');
  if (fs.existsSync(shipped)) return { file: shipped, source: 'model directory' };
  const cached = cachePath(fp32Path);
  if (fs.existsSync(cached)) return { file: cached, source: 'cache' };
  const { model } = quantizeModel(loadForSplit(fp32Path), { perChannel: true });
  saveModel(model, cached);
  return { file: cached, source: 'quantized at load' };
}

/** Mean cosine between two graphs' mean-pooled outputs on the fixed probe sentences. */
async function measureAgreement(spec: ModelSpec, fp32Path: string, int8Path: string): Promise<number> {
  const options: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3 };
  const fp32 = await ort.InferenceSession.create(fp32Path, options);
  const int8 = await ort.InferenceSession.create(int8Path, options);
  try {
    const ids = await tokenize(spec.tokenizerPath, PROBE_SENTENCES, Math.min(128, spec.maxLength));
    return (await agreement(fp32, int8, padFeeds(ids, { inputNames: fp32.inputNames }))).mean;
  } finally {
    await fp32.release();
    await int8.release();
  }
}

export async function choosePrecision(spec: ModelSpec, quantize: Quantize, floor: number): Promise<PrecisionChoice> {
  const fp32: PrecisionChoice = { onnxPath: spec.onnxPath, precision: 'fp32', source: null, agreement: null, floor, fallback: null };
  // A quantized graph chosen explicitly (MODEL_VARIANT=quantized) is served as it is.
  if (path.basename(spec.onnxPath) === 'model_quantized.onnx') return { ...fp32, precision: 'int8', source: 'model directory' };
  if (quantize === 'none') return fp32;
  const { file, source } = int8Graph(spec.onnxPath);
  const measured = await measureAgreement(spec, spec.onnxPath, file);
  if (measured < floor) {
    return { ...fp32, source, agreement: measured, fallback: `int8 agrees with fp32 at ${measured.toFixed(4)}, under the floor ${floor}` };
  }
  return { onnxPath: file, precision: 'int8', source, agreement: measured, floor, fallback: null };
}
