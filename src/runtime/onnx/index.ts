/**
 * ONNX model tooling for the runtime:
 *  - proto.ts: ONNX's messages (gen/onnx_pb.ts, generated from onnx.proto for @bufbuild/protobuf),
 *    decodeModel / encodeModel (weights stay views of the file, unknown fields survive),
 *  - model.ts: model files (loadModel, saveModel); external.ts: external-data files (both ways),
 *  - tensor.ts: tensor and value-info helpers (float values, building tensors and types),
 *  - graph.ts: producers/consumers, topological order, static element-type propagation,
 *  - split.ts: per-layer stages and their manifest,
 *  - cache.ts: the on-disk stage cache (ensureStages) and ORT-based boundary typing,
 *  - staged.ts: StagedRunner (layer exit that skips the compute after the exit layer),
 *  - quantize.ts: int8 DynamicQuantizeMatMul rewrite and the fp32/int8 agreement check,
 *  - probe.ts: a fixed sentence set and feed builder for quality checks.
 */

export {
  cacheKey,
  cacheRoot,
  type EnsureStagesResult,
  ensureStages,
  findTokenizer,
  inferTypesWithOrt,
  loadForSplit,
  NotSplittableError,
  readManifest,
  resolveOnnxPath,
  SPLITTER_VERSION,
  splitModelTyped,
  stagesRoot,
  writeStages,
} from './cache.js';
export { externalizeWeights, inlineExternalData, weightBytes } from './external.js';
export { attr, attrFloat, attrInt, capturedNames, type GraphIndex, indexGraph, inferElemTypes, nodeReads } from './graph.js';
export { loadModel, saveModel } from './model.js';
export { PROBE_SENTENCES, tokenize } from './probe.js';
export * from './proto.js';
export {
  type Agreement,
  agreement,
  maskedMeanPool,
  type QuantizeOptions,
  type QuantizeReport,
  type QuantizeResult,
  quantizeModel,
  quantizeWeight,
  type Runnable,
} from './quantize.js';
export {
  layerScopeOf,
  type SplitOptions,
  type SplitResult,
  type Stage,
  type StageInfo,
  type StageKind,
  type StageManifest,
  splitModel,
  type ValueType,
} from './split.js';
export { StagedRunner, type StagedRunOptions, withoutSpinning } from './staged.js';
export * from './tensor.js';
