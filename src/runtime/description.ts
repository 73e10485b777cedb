/**
 * A model's description: what it can do, decided once on the main thread before any worker
 * starts. Loading a model means choosing its precision (fp32, or int8 with the measured agreement),
 * preparing its graph variants (the unsplit graph and/or the per-layer stages, every one reading
 * its weights from one shared external-data file), and reading its pooling, prompts and task.
 * Workers receive the finished graphs (paths) and only run them: they never split, quantize or
 * decide a capability themselves, so every worker serves the same capabilities.
 */
import fs from 'node:fs';
import path from 'node:path';
import { type LoadModelOptions, loadModelDir, type ModelSpec } from './model-dir.js';
import { ensureSharedGraph, ensureStages, UNSPLIT_FILE } from './onnx/cache.js';
import { weightBytes } from './onnx/external.js';
import { loadModel } from './onnx/model.js';
import { choosePrecision, type PrecisionChoice, type Quantize } from './precision.js';

/** What a model is served for: embeddings, or relevance of text pairs (cross-encoder rerankers). */
export type { ModelTask } from './model-dir.js';

import type { ModelTask } from './model-dir.js';

/** Weight bytes a graph variant needs: inline in its graph file(s), and in the shared external file. */
export interface VariantWeights {
  inline: number;
  shared: number;
}

export interface GraphVariants {
  /**
   * The unsplit graph, or null when full depth runs through the stages (when the graph's output
   * is token-level, the stages give the same vectors at ≤ 3% more compute, measured, and one
   * prepacked copy of the weights fewer per worker).
   */
  unsplit: string | null;
  /** Per-layer stages (layer exit, Token Prepending): their directory, or why there are none. */
  stages: { ok: true; dir: string; count: number } | { ok: false; reason: string };
  /** The one external-data file every variant maps its weights from. */
  weightsFile: string;
  /** Weight bytes per variant as written to disk; a variant that held its own copy would show it here. */
  weights: { unsplit: VariantWeights | null; stages: VariantWeights | null; file: number };
  /** Graph inputs and outputs (from the graph, without loading a session). */
  inputNames: string[];
  outputNames: string[];
}

export interface ModelDescription {
  task: ModelTask;
  spec: ModelSpec;
  precision: PrecisionChoice;
  graphs: GraphVariants;
  /** True when the served graph pools itself (a `sentence_embedding` output). */
  pooledOutput: boolean;
}

export interface DescribeOptions extends LoadModelOptions {
  modelDir: string;
  /** Prepare per-layer stages (default true). */
  layerExit?: boolean;
  quantize?: Quantize;
  quantizeFloor?: number;
}

function variantWeights(files: string[]): VariantWeights {
  let inline = 0;
  let shared = 0;
  const seen = new Set<string>();
  for (const file of files) {
    const model = loadModel(file);
    const w = weightBytes(model, seen);
    inline += w.inline;
    shared += w.external;
  }
  return { inline, shared };
}

/** Prepares the graph variants of `onnxPath` (cached beside it) and reports their weights. */
export async function prepareGraphs(onnxPath: string, layerExit: boolean): Promise<GraphVariants> {
  let stages: GraphVariants['stages'] = { ok: false, reason: 'layer exit is turned off (LAYER_EXIT=off)' };
  if (layerExit) {
    try {
      const { dir, manifest } = await ensureStages(onnxPath);
      const outputs = manifest.graphOutputs;
      // A graph that pools itself (sentence_embedding) may do more than the configured pooling
      // (a Dense layer, say): keep it for full depth. Otherwise the stages serve full depth too.
      const unsplit = outputs.includes('sentence_embedding') ? path.join(dir, manifest.unsplitFile ?? UNSPLIT_FILE) : null;
      const stageFiles = manifest.stages.map((s) => path.join(dir, s.file));
      return {
        unsplit,
        stages: { ok: true, dir, count: manifest.stages.length },
        weightsFile: path.join(dir, manifest.weights!.file),
        weights: {
          unsplit: unsplit ? variantWeights([unsplit]) : null,
          stages: variantWeights(stageFiles),
          file: fs.statSync(path.join(dir, manifest.weights!.file)).size,
        },
        inputNames: manifest.graphInputs,
        outputNames: outputs,
      };
    } catch (err) {
      stages = { ok: false, reason: (err as Error).message.split('\n')[0]! };
    }
  }
  const unsplit = ensureSharedGraph(onnxPath);
  const graph = loadModel(unsplit).graph;
  const initializers = new Set(graph.initializer.map((t) => t.name));
  const weightsFile = path.join(path.dirname(unsplit), 'weights.bin');
  return {
    unsplit,
    stages,
    weightsFile,
    weights: { unsplit: variantWeights([unsplit]), stages: null, file: fs.statSync(weightsFile).size },
    inputNames: graph.input.map((i) => i.name ?? '').filter((n) => n && !initializers.has(n)),
    outputNames: graph.output.map((o) => o.name ?? ''),
  };
}

/** Loads a model directory into its description: precision chosen, graph variants prepared. */
export async function describeModel(
  options: DescribeOptions,
  log?: (level: 'info' | 'warn', msg: string) => void,
): Promise<ModelDescription> {
  const spec = loadModelDir(options.modelDir, options);
  const rerank = spec.task === 'rerank';
  // int8 is decided by the agreement of embeddings, and layer exit pools hidden states: a
  // reranker is served as exported, at full depth (its classifier head needs the whole graph).
  const precision = await choosePrecision(
    spec,
    rerank ? 'none' : (options.quantize ?? spec.quantize ?? 'none'),
    options.quantizeFloor ?? 0.99,
  );
  if (precision.fallback) log?.('warn', `serving fp32: ${precision.fallback}`);
  else if (precision.precision === 'int8') {
    log?.(
      'info',
      `serving int8 (${precision.source}${precision.agreement !== null ? `, agreement with fp32 ${precision.agreement.toFixed(4)}` : ''})`,
    );
  }
  const graphs = await prepareGraphs(precision.onnxPath, rerank ? false : (options.layerExit ?? true));
  if (rerank && !graphs.outputNames.includes('logits')) {
    throw new Error(`${precision.onnxPath}: a reranker needs a logits output [n, 1] (outputs: ${graphs.outputNames.join(', ')})`);
  }
  for (const required of ['input_ids', 'attention_mask']) {
    if (!graphs.inputNames.includes(required))
      throw new Error(`${precision.onnxPath} has no ${required} input (inputs: ${graphs.inputNames.join(', ')})`);
  }
  const pooledOutput = graphs.unsplit !== null && graphs.outputNames.includes('sentence_embedding');
  return { task: spec.task, spec, precision, graphs, pooledOutput: !rerank && pooledOutput };
}
