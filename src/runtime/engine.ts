/**
 * The engine: the runtime's single entry point. It validates a request's knobs against the model,
 * tokenizes, hands the inputs to the batch queue, and finishes each pooled vector (Matryoshka
 * truncation, normalization). Data flows one way: engine → tokenizer → queue → pool → workers.
 */
import os from 'node:os';
import { finishVector, quantize } from '../pooling/index.js';
import { probeBudget } from './budget-probe.js';
import { Calibration } from './calibration.js';
import type { ModelDescription } from './description.js';
import type { Embedder, EmbedOptions, EmbedResult, EngineInfo, EngineStats, RerankOptions, RerankResult } from './embedder.js';
import { emptyInputMessage, RuntimeError } from './errors.js';
import { checkKnobs } from './knobs.js';
import type { LoadModelOptions, ModelSpec } from './model-dir.js';
import { Models } from './models.js';
import type { WorkerPool } from './pool.js';
import type { Quantize } from './precision.js';
import type { GraphInfo } from './protocol.js';
import { type Admission, BatchQueue, type QueueLimits } from './queue.js';
import type { Lane, SchedulingPolicy } from './scheduler.js';
import type { TextTokenizer, TokenDetail } from './tokenize.js';

/** Settings shared by every model of one process: the workers and how they are scheduled. */
export interface RuntimeOptions {
  /** Inference workers; each holds every model's graphs. */
  workers?: number;
  /** ONNX Runtime intra-op threads per worker. */
  intraOpThreads?: number;
  /** Execution providers in order of preference (e.g. ['cuda', 'webgpu', 'cpu']). */
  executionProviders?: string[];
  limits?: Partial<QueueLimits>;
  /** Nice value of inference threads (Linux); default 10, so the HTTP thread is served first. */
  inferenceNice?: number;
  /** Split the graph into per-layer stages for `layer` and Token Prepending (default true). */
  layerExit?: boolean;
  /** Least mean cosine between int8 and fp32 probe embeddings for int8 to be served (default 0.99). */
  quantizeFloor?: number;
  /** ONNX Runtime's CPU memory arena, per session (default off: see WorkerConfig.memoryArena). */
  memoryArena?: boolean;
  /** Which model's queue the next free worker serves (default fair; fifo is the baseline it is measured against). */
  scheduling?: SchedulingPolicy;
  log?: (level: 'info' | 'warn' | 'error', msg: string) => void;
}

/** One served model: its public name and directory. */
export interface ModelEntry extends LoadModelOptions {
  name: string;
  dir: string;
  /** Serve int8 (default: embedder.json `quantize`, else fp32). */
  quantize?: Quantize;
  /** This model's queue limits, over the shared ones. */
  limits?: Partial<QueueLimits>;
}

/** A single model named `default` (MODEL_DIR alone). */
export interface EngineOptions extends LoadModelOptions, RuntimeOptions {
  modelDir: string;
  /** Serve int8 (default: embedder.json `quantize`, else fp32). */
  quantize?: Quantize;
}

export type { Embedder, EmbedOptions, EmbedResult, EngineInfo, EngineStats, RerankOptions, RerankResult } from './embedder.js';

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/**
 * Default threading, chosen by measurement (benchmarks/RESULTS.md): on 2 cores, two workers of one
 * thread each beat one worker of two threads by ~1.3× under load, because one worker fills its next
 * batch while the other computes, so the cores never wait on the JavaScript side. On bigger
 * machines the instances are capped at 4 (memory: one model copy each) and share the cores.
 */
export function defaultThreading(cores = os.availableParallelism(), workers?: number): { workers: number; intraOpThreads: number } {
  const n = workers ?? Math.max(1, Math.min(cores, 4));
  return { workers: n, intraOpThreads: Math.max(1, Math.floor(cores / n)) };
}

const DEFAULT_BUDGET = 8192;

export function defaultLimits(spec: ModelSpec): QueueLimits {
  const maxBatchSize = 64;
  return {
    maxBatchSize,
    maxBatchTokens: Math.max(spec.maxLength, DEFAULT_BUDGET),
    // No waiting by default: with two or more workers the queue fills while they are busy, and a
    // lone client should not pay a delay (measured: p50 12 vs 16 ms sequential, same throughput
    // under 64 connections within noise).
    maxDelayMs: 0,
    // Room for two maximum-size (2048-input) requests: the SDKs send a large call's chunks all at
    // once (the AI SDK two 2048-value requests, LangChain several 512-text ones), and those should
    // queue, not bounce. Deeper than that only turns overload into timeouts: refuse early.
    maxQueueInputs: 4096,
    maxQueueTokens: Math.max(spec.maxLength, 262_144),
    lookahead: maxBatchSize * 4,
  };
}

/**
 * One served model: validates requests against it, tokenizes, and submits to its own queue. The
 * workers, shared with the other models, hold its graphs; the scheduler gives its queue its share.
 */
export class Engine implements Embedder {
  readonly spec: ModelSpec;
  /** Ranges for int8/uint8 outputs, measured on the calibration sentences on first use. */
  readonly calibration: Calibration;
  private ready = false;
  private readonly pool: WorkerPool;
  private readonly threading: { workers: number; intraOpThreads: number };

  constructor(
    /** The name clients address the model by (`model` in requests). */
    readonly name: string,
    readonly description: ModelDescription,
    private readonly tokenizer: TextTokenizer,
    /** The process's models, whose workers and scheduler this model shares. */
    readonly models: Models,
    /** This model's share of the workers (its queue's batch runner). */
    private readonly lane: Lane,
    /** The model's index among the workers' graphs. */
    private readonly index: number,
    limits: QueueLimits,
    private readonly budgetConfigured: boolean,
    private readonly log: RuntimeOptions['log'],
  ) {
    this.spec = description.spec;
    this.pool = models.pool;
    this.threading = models.threading;
    this.queue = new BatchQueue(limits, lane, this.queueModel, this.threading.workers);
    this.calibration = new Calibration(this.spec, async (texts, plan) => {
      const r = await this.embed(texts, { layer: plan.layer, tokenPrepending: plan.tokenPrepending, normalize: false });
      return r.vectors;
    });
  }

  /** Per-layer stages as the description decided them (the same for every worker). */
  private get stages(): EngineInfo['stages'] {
    const s = this.description.graphs.stages;
    return s.ok ? { ok: true, count: s.count } : s;
  }

  private queue: BatchQueue;

  /** One model named `default` in its own runtime (MODEL_DIR alone); see Models.load for several. */
  static async load(options: EngineOptions): Promise<Engine> {
    const { modelDir, variant, onnxFile, quantize, ...runtime } = options;
    const models = await Models.load({ ...runtime, models: [{ name: 'default', dir: modelDir, variant, onnxFile, quantize }] });
    return models.default;
  }

  get task(): ModelSpec['task'] {
    return this.spec.task;
  }

  /** What the queue and the budget probe need to know of the model. */
  private get queueModel(): { id: string; index: number; width: number; numLayers: number } {
    return {
      id: this.name,
      index: this.index,
      width: this.spec.task === 'rerank' ? 1 : this.spec.hiddenSize,
      numLayers: this.spec.numLayers,
    };
  }

  /**
   * Runs one inference end to end so the first client does not pay for lazy initialization, and,
   * unless a token budget was configured, sizes the budget by measurement (`budget-probe.ts`): the
   * queue is then rebuilt with it, since a queue's limits are fixed when it is made.
   */
  async warmUp(): Promise<void> {
    if (this.task === 'rerank') await this.rerank('warm-up', ['warm-up'], {});
    else await this.embed(['warm-up'], {});
    if (!this.budgetConfigured) {
      const budget = await this.probeBudget();
      const previous = this.queue;
      this.queue = new BatchQueue({ ...previous.limits, maxBatchTokens: budget }, this.lane, this.queueModel, this.threading.workers);
      await previous.close(30_000);
    }
    this.ready = true;
  }

  private async probeBudget(): Promise<number> {
    const seq = Math.min(this.spec.maxLength, 128);
    const [warm] = await this.tokenizer.tokenize(['the quick brown fox jumps over the lazy dog'], {
      prefix: null,
      instruction: null,
      truncate: true,
      direction: 'right',
      tokenPrepending: false,
    });
    const ids = new Int32Array(seq).map((_, i) => warm!.ids[i % warm!.ids.length]!);
    const { budget, measured } = await probeBudget({
      runner: this.pool,
      model: this.queueModel,
      ids,
      maxBatchSize: this.queue.limits.maxBatchSize,
      fallback: DEFAULT_BUDGET,
    });
    const prefix = this.models.all.length > 1 ? `model ${this.name}: ` : '';
    this.log?.(
      'info',
      `${prefix}batch token budget ${budget} (probe, tokens/ms: ${measured.map((m) => `${m.budget}→${m.rate.toFixed(1)}`).join(', ')})`,
    );
    return Math.max(budget, this.spec.maxLength);
  }

  /** What the workers found in this model's graph. */
  private get graph(): GraphInfo {
    return this.pool.info.models[this.index]!;
  }

  get isReady(): boolean {
    return this.ready && this.pool.alive > 0;
  }

  get info(): EngineInfo {
    return {
      model: this.spec,
      provider: this.pool.info.provider,
      workers: this.threading.workers,
      intraOpThreads: this.threading.intraOpThreads,
      limits: { ...this.queue.limits },
      inputNames: this.graph.inputNames,
      pooledOutput: this.graph.pooledOutput,
      stages: this.stages,
      precision: this.description.precision,
      task: this.description.task,
      graphs: { unsplit: this.description.graphs.unsplit !== null, weights: this.description.graphs.weights },
      scheduling: this.models.scheduler.policy,
    };
  }

  get stats(): EngineStats {
    return { ...this.queue.stats, workerRestarts: this.pool.restarts, workersAlive: this.pool.alive };
  }

  /** Throws `overloaded` at once when the queue is full (call before doing any work for a request). */
  admit(): Admission {
    return this.queue.admit();
  }

  release(admission: Admission): void {
    this.queue.release(admission);
  }

  /** Checks a request's knobs against the model (`checkKnobs`); throws a RuntimeError naming the problem. */
  validate(opts: EmbedOptions): void {
    if (this.spec.task !== 'embed')
      throw new RuntimeError('WRONG_TASK', `model ${this.name} is a reranker: it scores text pairs (/rerank) and does not embed`);
    checkKnobs(this.spec, this.stages, opts);
  }

  /** Refuses inputs with nothing the model can read (EMPTY_INPUT), before any work is queued for them. */
  async checkReadable(texts: readonly string[], query?: string): Promise<void> {
    const empty: Array<number | 'query'> = await this.tokenizer.unreadable(query === undefined ? texts : [query, ...texts]);
    if (query !== undefined) empty.forEach((i, n) => (empty[n] = i === 0 ? 'query' : (i as number) - 1));
    if (empty.length === 0) return;
    const first = empty[0]!;
    throw new RuntimeError('EMPTY_INPUT', emptyInputMessage(first === 'query' ? 'the query' : `input ${first}`, empty.length - 1), {
      emptyInputs: empty,
    });
  }

  /** Embeds texts: one finished vector per text, in order, with token counts and timings. */
  async embed(texts: readonly string[], opts: EmbedOptions): Promise<EmbedResult> {
    this.validate(opts);
    const t0 = performance.now();
    await this.checkReadable(texts);
    const promptName = opts.promptName ?? (opts.instruction === undefined ? (this.spec.defaultPromptName ?? undefined) : undefined);
    const tokenized = await this.tokenizer.tokenize(texts, {
      prefix: promptName !== undefined ? this.spec.prompts[promptName]! : null,
      instruction: opts.instruction ?? null,
      truncate: opts.truncate ?? true,
      direction: opts.truncationDirection ?? 'right',
      tokenPrepending: opts.tokenPrepending ?? false,
    });
    const tokenizeMs = performance.now() - t0;
    const result = await this.queue.submit({
      inputs: tokenized,
      plan: { layer: opts.layer ?? this.spec.numLayers, tokenPrepending: opts.tokenPrepending ?? false },
      deadline: opts.deadline,
      signal: opts.signal,
      admission: opts.admission,
    });
    const dims = opts.dimensions ?? this.spec.hiddenSize;
    const normalize = opts.normalize ?? true;
    const tokenCounts = tokenized.map((t) => t.ids.length);
    const vectors = result.vectors.map((v) => finishVector(v, dims, normalize));
    const type = opts.embeddingType ?? 'float';
    let quantized: EmbedResult['quantized'];
    if (type !== 'float') {
      const ranges =
        type === 'int8' || type === 'uint8'
          ? await this.calibration.ranges(
              { layer: opts.layer ?? this.spec.numLayers, tokenPrepending: opts.tokenPrepending ?? false },
              dims,
              normalize,
            )
          : undefined;
      quantized = vectors.map((v) => quantize(v, type, ranges));
    }
    return {
      vectors,
      ...(quantized && { quantized }),
      tokenCounts,
      totalTokens: tokenCounts.reduce((a, b) => a + b, 0),
      timings: { tokenizeMs, queueMs: result.queueMs, inferenceMs: result.inferenceMs },
    };
  }

  /** Every token of each text (with `promptName`'s prompt when given), untruncated: TEI's `/tokenize`. */
  async tokenDetails(texts: readonly string[], opts: { promptName?: string; addSpecialTokens?: boolean }): Promise<TokenDetail[][]> {
    this.validate({ promptName: opts.promptName });
    return this.tokenizer.details(texts, {
      prefix: opts.promptName !== undefined ? this.spec.prompts[opts.promptName]! : null,
      addSpecialTokens: opts.addSpecialTokens ?? true,
    });
  }

  /** Token ids back to text, one string per sequence: TEI's `/decode`. */
  async decode(sequences: readonly (readonly number[])[], skipSpecialTokens = true): Promise<string[]> {
    return this.tokenizer.decode(sequences, skipSpecialTokens);
  }

  /**
   * Scores each document's relevance to the query with the cross-encoder: one (query, document)
   * pair per document, tokenized with the pair encoding and batched with everyone else's work.
   */
  async rerank(query: string, documents: readonly string[], opts: RerankOptions): Promise<RerankResult> {
    if (this.task !== 'rerank')
      throw new RuntimeError('WRONG_TASK', `model ${this.name} is an embedding model: it cannot rerank (name a reranker)`);
    const t0 = performance.now();
    await this.checkReadable(documents, query);
    const tokenized = await this.tokenizer.tokenizePairs(query, documents, { truncate: opts.truncate ?? true });
    const tokenizeMs = performance.now() - t0;
    const result = await this.queue.submit({
      inputs: tokenized,
      plan: { layer: this.spec.numLayers, tokenPrepending: false },
      deadline: opts.deadline,
      signal: opts.signal,
      admission: opts.admission,
    });
    const logits = result.vectors.map((v) => v[0]!);
    const tokenCounts = tokenized.map((t) => t.ids.length);
    return {
      logits,
      scores: logits.map(sigmoid),
      tokenCounts,
      totalTokens: tokenCounts.reduce((a, b) => a + b, 0),
      timings: { tokenizeMs, queueMs: result.queueMs, inferenceMs: result.inferenceMs },
    };
  }

  /** Failure drill: the worker that takes the next batch dies instead of answering. */
  crashNextBatch(): void {
    this.pool.crashNextBatch();
  }

  /** Stops taking work for this model and lets what is queued finish within `drainMs` (Models.close stops the workers). */
  async closeQueue(drainMs = 0): Promise<void> {
    this.ready = false;
    await this.queue.close(drainMs);
  }

  /** Stops the whole runtime this model belongs to (every model, then the workers). */
  async close(drainMs = 0): Promise<void> {
    await this.models.close(drainMs);
  }
}
