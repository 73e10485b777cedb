/**
 * Messages between the pool (JavaScript thread) and inference workers. Batches travel as flat
 * typed arrays so both directions can move their buffers instead of copying them.
 */
import type { PoolingMode } from '../pooling/index.js';

/** Everything a worker needs to load its sessions, one set per served model; sent once as workerData. */
export interface WorkerConfig {
  /** ONNX Runtime's CPU memory arena (see ModelWorkerConfig). */
  memoryArena: boolean;
  /** Execution providers in order of preference; the first that creates a session wins. */
  providers: string[];
  intraOpThreads: number;
  /** Nice value for inference threads (0 = unchanged); the HTTP thread keeps its own. */
  nice: number;
  /** The served models, addressed by their index in run messages. */
  models: ModelWorkerConfig[];
}

/** What a worker needs to know about one model's graphs. */
export interface ModelWorkerConfig {
  /** `embed`: pooled vectors of `hiddenSize`; `rerank`: one relevance logit per sequence (output `logits` [n, 1]). */
  task: 'embed' | 'rerank';
  /**
   * The finished graphs to load (see description.ts): the unsplit graph, the stage directory, or
   * both. With no unsplit graph, full depth runs through the stages.
   */
  graphs: { unsplit: string | null; stagesDir: string | null };
  pooling: PoolingMode;
  paddingSide: 'left' | 'right';
  hiddenSize: number;
  numLayers: number;
  /** Pre-LN decoders: run the final norm on an early exit's hidden state. */
  finalNormOnExit: boolean;
  /** Layers (1-based, inclusive) after which the placeholder state is overwritten, when the model declares it. */
  tokenPrepending: { firstLayer: number; lastLayer: number } | null;
}

/** How a batch is computed; every input of a batch shares it. */
export interface BatchPlan {
  /** Exit after this layer (numLayers = the full graph). */
  layer: number;
  /** Token Prepending: inputs start with the placeholder token, whose state is rewritten between layers. */
  tokenPrepending: boolean;
}

/** A batch as the pool runs it: the model, the token ids and how to pool them. */
export interface BatchInput {
  /** Index of the model in WorkerConfig.models. */
  model: number;
  /** Token ids of every sequence, concatenated. */
  ids: Int32Array;
  /** Length of each sequence. */
  lengths: Int32Array;
  /** Leading tokens of each sequence to leave out of pooling (prompt tokens). */
  skips: Int32Array;
  /** Where each sequence's second segment (token type 1) starts: its length when it has none. */
  segments: Int32Array;
  plan: BatchPlan;
}

export interface RunMessage extends BatchInput {
  type: 'run';
  batchId: number;
  /** Failure drill: run, then die instead of answering. */
  crash?: boolean;
}

export interface ReadyMessage {
  type: 'ready';
  provider: string;
  /** One line per provider that could not be used, for the log. */
  providerErrors: string[];
  /** What each model's graph turned out to be, in WorkerConfig.models order. */
  models: GraphInfo[];
}

export interface GraphInfo {
  inputNames: string[];
  outputName: string;
  /** True when the graph pools itself (a `sentence_embedding` output). */
  pooledOutput: boolean;
}

export interface ResultMessage {
  type: 'result';
  batchId: number;
  /** Pooled, unnormalized vectors, [batch, hidden] row-major; for a reranker, one logit per sequence. */
  vectors: Float32Array;
  inferenceMs: number;
}

export interface ErrorMessage {
  type: 'error';
  batchId: number;
  message: string;
}

export interface InitErrorMessage {
  type: 'init-error';
  message: string;
}

export type ToWorker = RunMessage;
export type FromWorker = ReadyMessage | ResultMessage | ErrorMessage | InitErrorMessage;
