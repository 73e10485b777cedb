/**
 * What the HTTP layer sees of a model: its description, its state, and `embed`. The server is
 * written against this interface, not against `Engine`, so it can be built (and its OpenAPI
 * document generated) without loading a model or starting workers.
 */
import type { EmbeddingType } from '../pooling/index.js';
import type { GraphVariants, ModelTask } from './description.js';
import type { ModelSpec } from './model-dir.js';
import type { PrecisionChoice } from './precision.js';
import type { Admission, QueueLimits, QueueStats } from './queue.js';
import type { SchedulingPolicy } from './scheduler.js';
import type { TokenDetail, TruncationDirection } from './tokenize.js';

/** Per-request knobs, as the public API names them. */
export interface EmbedOptions {
  dimensions?: number;
  layer?: number;
  promptName?: string;
  instruction?: string;
  tokenPrepending?: boolean;
  normalize?: boolean;
  truncate?: boolean;
  truncationDirection?: TruncationDirection;
  /** Quantized output besides the float vectors (after truncation and normalization); default float. */
  embeddingType?: EmbeddingType;
  /** Absolute deadline on the performance.now() clock. */
  deadline?: number;
  signal?: AbortSignal;
  /** The queue reservation `admit` made for this request (released when its inputs are queued). */
  admission?: Admission;
}

export interface EmbedResult {
  vectors: Float32Array[];
  /** The vectors quantized, when `embeddingType` asked for int8, uint8, binary or ubinary. */
  quantized?: Array<Int8Array | Uint8Array>;
  /** Tokens computed, per input (prompt and special tokens included). */
  tokenCounts: number[];
  totalTokens: number;
  timings: { tokenizeMs: number; queueMs: number; inferenceMs: number };
}

export interface EngineInfo {
  model: ModelSpec;
  provider: string;
  workers: number;
  intraOpThreads: number;
  limits: Readonly<QueueLimits>;
  inputNames: string[];
  pooledOutput: boolean;
  precision: PrecisionChoice;
  /** Per-layer stages (layer exit, Token Prepending): available, or why not. */
  stages: { ok: true; count: number } | { ok: false; reason: string };
  task: ModelTask;
  /** Graph variants served and the weight bytes each holds (inline, and in the shared file). */
  graphs: { unsplit: boolean; weights: GraphVariants['weights'] };
  /** How the workers are shared between the served models. */
  scheduling: SchedulingPolicy;
}

export interface RerankOptions {
  /** Cut pairs longer than the model's maximum (the document first); false makes a too-long pair INPUT_TOO_LONG. */
  truncate?: boolean;
  /** The queue reservation `admit` made for this request (released when its pairs are queued). */
  admission?: Admission;
  deadline?: number;
  signal?: AbortSignal;
}

export interface RerankResult {
  /** The cross-encoder's logit per document, in input order. */
  logits: number[];
  /** sigmoid(logit) per document: the relevance score. */
  scores: number[];
  tokenCounts: number[];
  totalTokens: number;
  timings: { tokenizeMs: number; queueMs: number; inferenceMs: number };
}

export type EngineStats = QueueStats & { workerRestarts: number; workersAlive: number };

export interface Embedder {
  /** The name clients address the model by (`model` in requests). */
  readonly name: string;
  /** `embed` (a bi-encoder) or `rerank` (a cross-encoder). */
  readonly task: ModelSpec['task'];
  readonly spec: ModelSpec;
  readonly info: EngineInfo;
  readonly stats: EngineStats;
  /** Loaded, warmed up, and with a live worker. */
  readonly isReady: boolean;
  /**
   * Admits a request before any work is done for it, reserving room in the queue for a request of
   * the average size, or throws QUEUE_FULL at once. Pass the admission to `embed` (it is released
   * when the inputs are queued) and `release` it when the request ends any other way (idempotent).
   */
  admit(): Admission;
  release(admission: Admission): void;
  /** Checks a request's knobs against the model; throws a RuntimeError naming the problem. */
  validate(opts: EmbedOptions): void;
  /**
   * Refuses, with EMPTY_INPUT naming them, texts with nothing the model can read (empty, blank, or
   * only characters its tokenizer drops), and a blank rerank `query`. `embed` and `rerank` check
   * their inputs themselves; this is for text used otherwise (a lexical search query).
   */
  checkReadable(texts: readonly string[], query?: string): Promise<void>;
  /** One finished vector per text, in order, with token counts and timings. */
  embed(texts: readonly string[], opts: EmbedOptions): Promise<EmbedResult>;
  /** Rerankers: the relevance of each document to the query, in input order. */
  rerank(query: string, documents: readonly string[], opts: RerankOptions): Promise<RerankResult>;
  /** Every token of each text (with `promptName`'s prompt when given), untruncated. */
  tokenDetails(texts: readonly string[], opts: { promptName?: string; addSpecialTokens?: boolean }): Promise<TokenDetail[][]>;
  /** Token ids back to text, one string per sequence. */
  decode(sequences: readonly (readonly number[])[], skipSpecialTokens?: boolean): Promise<string[]>;
  /** Where int8/uint8 outputs take their per-dimension ranges from. */
  readonly calibration: { readonly source: string; readonly sentences: readonly string[] };
}

/** The served models, as the HTTP layer sees them. */
export interface ModelSet {
  /** Every model, the default first. */
  readonly all: readonly Embedder[];
  /** The first configured model. */
  readonly default: Embedder;
  /** A model by name; undefined for an unknown name. */
  get(name: string): Embedder | undefined;
  /** The first model that does `task` (the default for requests of that kind that name none). */
  firstFor(task: Embedder['task']): Embedder | undefined;
}
