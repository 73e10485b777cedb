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
export * from './model.js';
export { Reader, Writer, ProtoError, type Int64 } from './wire.js';
export { indexGraph, inferElemTypes, nodeReads, capturedNames, type GraphIndex } from './graph.js';
export {
  layerScopeOf,
  splitModel,
  type SplitOptions,
  type SplitResult,
  type Stage,
  type StageInfo,
  type StageKind,
  type StageManifest,
  type ValueType,
} from './split.js';
export {
  cacheKey,
  ensureStages,
  findTokenizer,
  inferTypesWithOrt,
  loadForSplit,
  NotSplittableError,
  readManifest,
  resolveOnnxPath,
  splitModelTyped,
  SPLITTER_VERSION,
  cacheRoot,
  stagesRoot,
  writeStages,
  type EnsureStagesResult,
} from './cache.js';
export { StagedRunner, withoutSpinning, type StagedRunOptions } from './staged.js';
export {
  agreement,
  maskedMeanPool,
  quantizeModel,
  quantizeWeight,
  type Agreement,
  type QuantizeOptions,
  type QuantizeReport,
  type QuantizeResult,
  type Runnable,
} from './quantize.js';
export { PROBE_SENTENCES, tokenize } from './probe.js';
