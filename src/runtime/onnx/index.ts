/**
 * ONNX model tooling for the runtime:
 *  - wire.ts / model.ts: ModelProto codec (hand-written protobuf; weights stay views, unknown
 *    fields kept raw),
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
export { capturedNames, type GraphIndex, indexGraph, inferElemTypes, nodeReads } from './graph.js';
export * from './model.js';
export { PROBE_SENTENCES, tokenize } from './probe.js';
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
export { type Int64, ProtoError, Reader, Writer } from './wire.js';
