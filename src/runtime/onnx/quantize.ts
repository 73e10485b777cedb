/**
 * int8 weight quantization for CPU serving: every MatMul whose second input is a constant 2-D
 * float initializer (and every Gemm with a constant B, transB respected, transA = 0, alpha = 1)
 * becomes ONNX Runtime's `com.microsoft` DynamicQuantizeMatMul: A stays float and is quantized
 * per call by the kernel; B is stored as symmetric int8 (zero point 0) with its scale. A bias Add
 * right after the MatMul (a 1-D constant of the output width, the MatMul's only consumer) is
 * folded into the kernel's bias input. Constants are looked up through Identity nodes (torch
 * exports shared or deduplicated weights as `Identity(initializer)`); aliases and float
 * initializers nothing reads after the rewrite are dropped. Embedding tables (Gather), norms, softmax and everything
 * else stay fp32. Quantized nodes keep the MatMul's name with a `_quant` suffix, so module scopes
 * survive and the graph still splits by layer (split.ts).
 *
 * Per-tensor vs per-channel. Both are supported: per-tensor scale = max|W| / 127; per-channel
 * (one scale per output column: a 1-D b_scale and b_zero_point of size N, which ORT's
 * DynamicQuantizeMatMul accepts) scale_n = max_k |W[k, n]| / 127. Default: per-channel, chosen by
 * measurement on models/minilm-shaped (benchmarks/quantize.ts, 32-token inputs, 2 threads):
 * agreement with fp32 on the 16 probe sentences (mean cosine of mean-pooled outputs) 0.99734
 * per-channel vs 0.99687 per-tensor, identical in every run; batch-64 throughput equal within
 * the run-to-run noise of the shared 2-core machine (per-channel 925 vs per-tensor 875 seq/s in
 * one run, 256 vs 261 in a loaded one). The file sizes differ by N floats per matrix. Folding the bias Add into the kernel (one node less per projection, the bias added in
 * the GEMM's output pass) showed no difference resolvable above that noise (interleaved best-of-5:
 * 229 fused vs 175 unfused per-channel, 186 vs 197 per-tensor); it is on by default and
 * `fuseBias: false` turns it off.
 */

import { clone, create } from '@bufbuild/protobuf';
import type ort from 'onnxruntime-node';
import { cosine, pool, spansFromMask } from '../../pooling/index.js';
import { attrFloat, attrInt, indexGraph, nodeReads } from './graph.js';
import {
  DataType,
  GraphProtoSchema,
  type ModelProto,
  ModelProtoSchema,
  type NodeProto,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  type TensorProto,
  withFields,
} from './proto.js';
import { floatValues, isExternal, makeTensor } from './tensor.js';

export interface QuantizeOptions {
  /** One scale per output column instead of one per matrix. Default true (see the header). */
  perChannel?: boolean;
  /** Fold a following bias Add into the kernel. Default true. */
  fuseBias?: boolean;
  /** How weights are stored (see WeightFormat). Default DEFAULT_WEIGHT_FORMAT. */
  weightFormat?: WeightFormat;
}

/**
 * Weight storage for DynamicQuantizeMatMul. ORT quantizes activations to uint8 (0..255) and
 * multiplies them with the weights. On x86 CPUs without AVX-512 VNNI (AVX2-only, e.g. AMD Zen 2/3),
 * MLAS's u8×s8 kernel uses VPMADDUBSW, which sums each pair of u8×s8 products into a *saturating*
 * int16: with full-range weights (|q| ≤ 127) a pair can reach 2·255·127 = 64770 and clips at 32767.
 * VNNI (VPDPBUSD) accumulates in int32 and never clips. So full-range s8 is CPU-dependent.
 * - `s8`: |q| ≤ 127. Exact on VNNI, AMX and arm64; clips on AVX2-only x86.
 * - `s8-reduced`: |q| ≤ 64 ("reduce_range", as ORT's own quantizer offers for non-VNNI x86):
 *   2·255·64 = 32640 < 32767, so no pair can clip on any kernel; one bit less weight precision.
 * - `u8`: weights stored as 128 + q (zero point 128). MLAS's u8×u8 kernels widen to int16 before
 *   multiplying (VPMADDWD), so nothing clips either, at full precision.
 */
export type WeightFormat = 's8' | 's8-reduced' | 'u8';
export const DEFAULT_WEIGHT_FORMAT: WeightFormat = 's8-reduced';
/** The largest |q| a weight format stores. */
export const WEIGHT_QMAX: Record<WeightFormat, number> = { s8: 127, 's8-reduced': 64, u8: 127 };

export interface QuantizeReport {
  /** MatMul/Gemm nodes rewritten. */
  quantized: number;
  /** Bias Adds folded into them. */
  fusedBias: number;
  /** Distinct weight matrices quantized. */
  weights: number;
  /** Float weight bytes replaced, and the int8 (+ scales) bytes that replaced them. */
  floatBytes: number;
  int8Bytes: number;
  /** MatMul/Gemm nodes left in float, with why. */
  skipped: { node: string; reason: string }[];
}

export interface QuantizeResult {
  model: ModelProto;
  report: QuantizeReport;
}

const MS_DOMAIN = 'com.microsoft';

function isDefaultDomain(n: NodeProto): boolean {
  return n.domain === '' || n.domain === 'ai.onnx';
}

interface QuantizedWeight {
  q: string;
  scale: string;
  zeroPoint: string;
  /** Output width N. */
  n: number;
}

/**
 * Quantizes a [K, N] weight (or [N, K] when `transposed`) into int8 + scale(s), symmetric.
 * Returns the tensors in [K, N] layout.
 */
export function quantizeWeight(
  w: Float32Array,
  rows: number,
  cols: number,
  transposed: boolean,
  perChannel: boolean,
  qmax = 127,
): { q: Int8Array; scales: Float32Array; K: number; N: number } {
  const K = transposed ? cols : rows;
  const N = transposed ? rows : cols;
  const at = transposed ? (k: number, n: number) => w[n * cols + k]! : (k: number, n: number) => w[k * cols + n]!;
  const scales = new Float32Array(perChannel ? N : 1);
  if (perChannel) {
    for (let k = 0; k < K; k++) {
      for (let n = 0; n < N; n++) {
        const a = Math.abs(at(k, n));
        if (a > scales[n]!) scales[n] = a;
      }
    }
  } else {
    let m = 0;
    for (let i = 0; i < w.length; i++) {
      const a = Math.abs(w[i]!);
      if (a > m) m = a;
    }
    scales[0] = m;
  }
  for (let i = 0; i < scales.length; i++) scales[i] = scales[i]! > 0 ? scales[i]! / qmax : 1;
  const q = new Int8Array(K * N);
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < N; n++) {
      const s = scales[perChannel ? n : 0]!;
      const v = Math.round(at(k, n) / s);
      q[k * N + n] = v > qmax ? qmax : Math.max(v, -qmax);
    }
  }
  return { q, scales, K, N };
}

/** Rewrites a model (a full graph or one stage) for int8 serving; the input model is not modified. */
export function quantizeModel(model: ModelProto, options: QuantizeOptions = {}): QuantizeResult {
  const perChannel = options.perChannel ?? true;
  const fuseBias = options.fuseBias ?? true;
  const weightFormat = options.weightFormat ?? DEFAULT_WEIGHT_FORMAT;
  const g = model.graph;
  const index = indexGraph(g);
  const inits = new Map<string, TensorProto>();
  for (const t of g.initializer) if (t.name) inits.set(t.name, t);
  const taken = new Set<string>([...inits.keys(), ...g.node.flatMap((n) => n.output), ...g.input.map((v) => v.name)]);
  const unique = (base: string): string => {
    let name = base;
    for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
    taken.add(name);
    return name;
  };

  /**
   * The initializer a name stands for: itself, or through Identity nodes (torch writes shared or
   * deduplicated weights as `Identity(initializer)`).
   */
  const identityOf = new Map<string, string>();
  for (const n of g.node)
    if (n.opType === 'Identity' && isDefaultDomain(n) && n.input[0] && n.output[0]) identityOf.set(n.output[0], n.input[0]);
  const constant = (name: string | undefined): TensorProto | undefined => {
    for (let hops = 0; name !== undefined && hops < 16; hops++) {
      const t = inits.get(name);
      if (t) return t;
      name = identityOf.get(name);
    }
    return undefined;
  };

  const report: QuantizeReport = { quantized: 0, fusedBias: 0, weights: 0, floatBytes: 0, int8Bytes: 0, skipped: [] };
  const newInits: TensorProto[] = [];
  const cache = new Map<string, QuantizedWeight>();
  const replaced = new Map<number, NodeProto>();
  const removed = new Set<number>();

  const quantized = (t: TensorProto, transposed: boolean): QuantizedWeight => {
    const key = `${t.name}|${transposed}`;
    const hit = cache.get(key);
    if (hit) return hit;
    const rows = Number(t.dims[0]!);
    const cols = Number(t.dims[1]!);
    const { q, scales, N } = quantizeWeight(floatValues(t), rows, cols, transposed, perChannel, WEIGHT_QMAX[weightFormat]);
    const base = `${t.name}${transposed ? '_T' : ''}`;
    const qName = unique(`${base}_quantized`);
    const sName = unique(`${base}_scale`);
    const zName = unique(`${base}_zero_point`);
    const scalarDims = perChannel ? [N] : [];
    const layout = transposed ? [cols, rows] : [rows, cols];
    const u8 = weightFormat === 'u8';
    newInits.push(
      u8
        ? makeTensor(
            qName,
            DataType.UINT8,
            layout,
            Uint8Array.from(q, (v) => v + 128),
          )
        : makeTensor(qName, DataType.INT8, layout, q),
    );
    newInits.push(makeTensor(sName, DataType.FLOAT, scalarDims, scales));
    newInits.push(
      u8
        ? makeTensor(zName, DataType.UINT8, scalarDims, new Uint8Array(scales.length).fill(128))
        : makeTensor(zName, DataType.INT8, scalarDims, new Int8Array(scales.length)),
    );
    report.weights++;
    report.floatBytes += rows * cols * 4;
    report.int8Bytes += q.byteLength + scales.byteLength * 2;
    const entry = { q: qName, scale: sName, zeroPoint: zName, n: N };
    cache.set(key, entry);
    return entry;
  };

  /** A float 1-D initializer of width n (or [1, n]) usable as the kernel's bias. */
  const biasTensor = (name: string | undefined, n: number): TensorProto | undefined => {
    if (!name) return undefined;
    const t = constant(name);
    if (!t || t.dataType !== DataType.FLOAT || isExternal(t)) return undefined;
    if (t.dims.length === 1 && Number(t.dims[0]) === n) return t;
    return undefined;
  };

  /** The Add consuming `out` with a constant bias, if it is out's only consumer. */
  const foldableAdd = (out: string, n: number): { i: number; bias: string } | undefined => {
    if (!fuseBias || index.graphOutputs.has(out)) return undefined;
    const cons = index.consumers.get(out) ?? [];
    if (cons.length !== 1) return undefined;
    const ci = cons[0]!;
    const add = g.node[ci]!;
    if (add.opType !== 'Add' || !isDefaultDomain(add) || add.input.length !== 2 || removed.has(ci)) return undefined;
    const other = add.input[0] === out ? add.input[1] : add.input[1] === out ? add.input[0] : undefined;
    const bias = other && other !== out ? biasTensor(other, n) : undefined;
    if (!bias) return undefined;
    return { i: ci, bias: bias.name };
  };

  const skip = (node: string, reason: string): void => {
    report.skipped.push({ node, reason });
  };

  g.node.forEach((node, i) => {
    const label = node.name || node.output[0] || `#${i}`;
    if ((node.opType !== 'MatMul' && node.opType !== 'Gemm') || !isDefaultDomain(node)) return;
    const b = constant(node.input[1]);
    if (!b) return; // activations × activations (attention scores): not a weight
    if (b.dataType !== DataType.FLOAT) return skip(label, `B is not float (data_type ${b.dataType})`);
    if (b.dims.length !== 2) return skip(label, `B has rank ${b.dims.length}`);
    if (isExternal(b)) return skip(label, 'B keeps its data in an external file');

    let transposed = false;
    let bias: string | undefined;
    if (node.opType === 'Gemm') {
      const alpha = attrFloat(node, 'alpha', 1);
      const beta = attrFloat(node, 'beta', 1);
      if (attrInt(node, 'transA', 0) !== 0) return skip(label, 'Gemm with transA');
      if (alpha !== 1) return skip(label, 'Gemm with alpha ≠ 1');
      transposed = attrInt(node, 'transB', 0) !== 0;
      const n = Number(b.dims[transposed ? 0 : 1]!);
      const c = node.input[2];
      if (c) {
        const ct = constant(c);
        const cdims = ct?.dims.map(Number) ?? [];
        const ok =
          ct &&
          ct.dataType === DataType.FLOAT &&
          !isExternal(ct) &&
          ((cdims.length === 1 && cdims[0] === n) || (cdims.length === 2 && cdims[0] === 1 && cdims[1] === n));
        if (!ok) return skip(label, 'Gemm C is not a constant bias of width N');
        if (beta === 1 && cdims.length === 1) bias = ct.name;
        else {
          const scaled = Float32Array.from(floatValues(ct), (v) => v * beta);
          bias = unique(`${c}_bias`);
          newInits.push(makeTensor(bias, DataType.FLOAT, [n], scaled));
        }
      }
    }
    const qw = quantized(b, transposed);
    let output = node.output[0]!;
    if (!bias) {
      const fold = foldableAdd(output, qw.n);
      if (fold) {
        bias = fold.bias;
        output = g.node[fold.i]!.output[0]!;
        removed.add(fold.i);
        report.fusedBias++;
      }
    }
    const inputs = [node.input[0]!, qw.q, qw.scale, qw.zeroPoint];
    if (bias) inputs.push(bias);
    replaced.set(
      i,
      create(NodeProtoSchema, {
        name: `${node.name || label}_quant`,
        opType: 'DynamicQuantizeMatMul',
        domain: MS_DOMAIN,
        input: inputs,
        output: [output],
      }),
    );
    report.quantized++;
  });

  let nodes: NodeProto[] = [];
  g.node.forEach((n, i) => {
    if (removed.has(i)) return;
    nodes.push(replaced.get(i) ?? n);
  });
  const outputs = new Set(g.output.map((o) => o.name));
  const readBy = (list: NodeProto[]): Set<string> => new Set(list.flatMap((n) => nodeReads(n)));
  // Identity aliases of weights that nothing reads any more go too (repeat: they can chain).
  for (;;) {
    const read = readBy(nodes);
    const kept = nodes.filter(
      (n) => !(n.opType === 'Identity' && identityOf.has(n.output[0] ?? '') && !read.has(n.output[0]!) && !outputs.has(n.output[0]!)),
    );
    if (kept.length === nodes.length) break;
    nodes = kept;
  }
  // Drop initializers the rewrite left unread (no fp32 copy of a quantized matrix stays behind);
  // initializers that were unread to begin with are left as they were.
  const readBefore = readBy(g.node);
  const readAfter = readBy(nodes);
  const graphInputs = new Set(g.input.map((v) => v.name));
  const initializer = [
    ...g.initializer.filter((t) => {
      const name = t.name;
      return readAfter.has(name) || !readBefore.has(name) || outputs.has(name) || graphInputs.has(name);
    }),
    ...newInits,
  ];

  const opsetImport = model.opsetImport.map((o) => clone(OperatorSetIdProtoSchema, o));
  if (report.quantized > 0 && !opsetImport.some((o) => o.domain === MS_DOMAIN))
    opsetImport.push(create(OperatorSetIdProtoSchema, { domain: MS_DOMAIN, version: 1n }));
  return {
    model: withFields(ModelProtoSchema, model, { opsetImport, graph: withFields(GraphProtoSchema, g, { node: nodes, initializer }) }),
    report,
  };
}

/** A session, a StagedRunner-like function, or anything mapping feeds to a [B, S, H] tensor. */
export type Runnable = ort.InferenceSession | ((feeds: Record<string, ort.Tensor>) => Promise<ort.Tensor>);

async function runToTokens(r: Runnable, feeds: Record<string, ort.Tensor>, outputName?: string): Promise<ort.Tensor> {
  if (typeof r === 'function') return r(feeds);
  const needed: Record<string, ort.Tensor> = {};
  for (const name of r.inputNames) {
    const t = feeds[name];
    if (!t) throw new Error(`feeds lack ${name}`);
    needed[name] = t;
  }
  const name = outputName ?? (r.outputNames.includes('last_hidden_state') ? 'last_hidden_state' : r.outputNames[0]!);
  const out = await r.run(needed, [name]);
  return out[name] as ort.Tensor;
}

/** Mean over the tokens attention_mask marks, per row of a [B, S, H] tensor. */
export function maskedMeanPool(t: ort.Tensor, mask: ort.Tensor): Float32Array[] {
  const [B, S, H] = t.dims as number[];
  const pooled = pool('mean', t.data as Float32Array, S!, H!, spansFromMask(mask.data as BigInt64Array | Int32Array, B!, S!));
  return Array.from({ length: B! }, (_, b) => pooled.subarray(b * H!, (b + 1) * H!));
}

export interface Agreement {
  /** Mean cosine between the two models' mean-pooled vectors. */
  mean: number;
  min: number;
  /** Per row. */
  cosines: number[];
}

/**
 * How closely two models agree on a batch (e.g. fp32 vs int8, for a load-time quality guard):
 * cosine of their mean-pooled (attention-masked) token outputs, row by row.
 */
export async function agreement(
  reference: Runnable,
  candidate: Runnable,
  feeds: Record<string, ort.Tensor>,
  outputName?: string,
): Promise<Agreement> {
  const mask = feeds.attention_mask;
  if (!mask) throw new Error('agreement needs an attention_mask feed');
  const a = maskedMeanPool(await runToTokens(reference, feeds, outputName), mask);
  const b = maskedMeanPool(await runToTokens(candidate, feeds, outputName), mask);
  const cosines = a.map((v, i) => cosine(v, b[i]!));
  return { mean: cosines.reduce((s, c) => s + c, 0) / cosines.length, min: Math.min(...cosines), cosines };
}
