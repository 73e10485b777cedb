/**
 * The batch queue: the one owner of waiting work. Client requests are split into single inputs,
 * queued, and coalesced into batches for whichever worker is free, across all clients.
 *
 * A batch always contains the oldest waiting input (so nothing starves), then the inputs closest
 * to it in length from a look-ahead window (so little compute goes to padding), as long as the
 * padded cost (batch size × longest sequence) stays within the token budget and the batch within
 * the maximum size. One input over the budget runs alone rather than waiting forever. Inputs with
 * different plans (exit layer, Token Prepending) never share a batch.
 */
import { RuntimeError } from './errors.js';
import { publish, type RejectedEvent } from './events.js';
import type { BatchInput } from './pool.js';
import type { BatchPlan, ResultMessage } from './protocol.js';

export interface QueueLimits {
  /** Most sequences in one batch. */
  maxBatchSize: number;
  /** Most padded tokens (batch size × longest sequence) in one batch. */
  maxBatchTokens: number;
  /** How long an under-full batch may wait for company while a worker is free. */
  maxDelayMs: number;
  /** Most inputs waiting (not yet running); beyond it new requests are refused. */
  maxQueueInputs: number;
  /** Most tokens waiting; beyond it new requests are refused. */
  maxQueueTokens: number;
  /** How many of the oldest inputs are considered when choosing a batch. */
  lookahead: number;
}

/** Where batches go: the worker pool, seen only through what the queue needs. */
export interface BatchRunner {
  readonly idle: number;
  run(batch: BatchInput): Promise<ResultMessage>;
  /** Calls `listener` whenever a worker becomes free; returns the unsubscribe function. */
  onIdle(listener: () => void): () => void;
  /** A shared runner (the scheduler's lane for this model) reads the queue's backlog to decide whom to serve. */
  attach?(queue: QueueView): void;
  detach?(queue: QueueView): void;
  /**
   * A shared runner: worker milliseconds of the other models' work that the workers will run
   * before `ownMs` more of this queue's work is done (its scheduling policy decides how much).
   */
  contendedMs?(ownMs: number): number;
}

/** What a shared runner reads of a queue. */
export interface QueueView {
  /** Inputs waiting (not yet dispatched). */
  readonly waiting: number;
  /** When the oldest waiting input arrived (performance.now()); Infinity when none waits. */
  readonly oldestArrival: number;
  /** Worker milliseconds the waiting inputs need at the measured throughput (0 before any batch ran). */
  readonly backlogMs: number;
}

export interface QueueInput {
  ids: Int32Array;
  promptTokens: number;
  /** Text pairs: where the second segment (token type 1) starts; absent for single texts. */
  segment?: number;
}

/**
 * Room reserved in the queue by a request admitted before its body was parsed: it counts against
 * the bounds until the request's inputs are submitted (or it fails first), so that admission
 * cannot let in more requests than the queue will take, whose parsing and tokenizing would be
 * thrown away at submit.
 */
export interface Admission {
  inputs: number;
  tokens: number;
  released: boolean;
}

export interface QueueRequest {
  inputs: QueueInput[];
  /** How the inputs are computed; inputs with different plans never share a batch. */
  plan: BatchPlan;
  /** Absolute time (performance.now() clock) after which unstarted work is dropped. */
  deadline?: number;
  /** Aborted when the client goes away. */
  signal?: AbortSignal;
  /** The reservation `admit` made for this request, released as the inputs take its place. */
  admission?: Admission;
}

export interface QueueResult {
  /** Pooled vectors, unnormalized, in input order. */
  vectors: Float32Array[];
  /** Milliseconds from enqueue until the first of the request's batches started. */
  queueMs: number;
  /** Milliseconds from the first batch's start to the last batch's end. */
  inferenceMs: number;
}

/** Counters for metrics and /info; the queue is their only writer. */
export interface QueueStats {
  queuedInputs: number;
  queuedTokens: number;
  batches: number;
  rejectedOverloaded: number;
  rejectedDeadline: number;
  dropped: number;
}

class Job {
  readonly vectors: Float32Array[];
  remaining: number;
  /** Inputs still waiting in the queue (not yet dispatched). */
  queued: number;
  /** Tokens of the inputs still waiting. */
  queuedTokens = 0;
  settled = false;
  firstStart = -1;
  lastEnd = -1;
  timer: NodeJS.Timeout | null = null;
  onAbort: (() => void) | null = null;

  constructor(
    readonly request: QueueRequest,
    readonly enqueuedAt: number,
    readonly resolve: (r: QueueResult) => void,
    readonly reject: (e: Error) => void,
  ) {
    this.vectors = new Array<Float32Array>(request.inputs.length);
    this.remaining = request.inputs.length;
    this.queued = request.inputs.length;
  }
}

interface Item {
  job: Job;
  index: number;
  ids: Int32Array;
  skip: number;
  segment: number;
  plan: BatchPlan;
  /** Equal for items whose plans are equal. */
  key: string;
}

export class BatchQueue implements QueueView {
  /** Waiting inputs, oldest first; those of settled jobs are skipped when a batch forms. */
  private items: Item[] = [];
  /** Items in `items` whose job has settled. */
  private skipped = 0;
  private delayTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Batches handed to workers and not yet answered. */
  private running = 0;
  /** Recent throughput of one worker in tokens/ms, to estimate how long the queue takes to drain. */
  private tokensPerMs = 0;
  /**
   * Throughput of one worker on near-full batches (tokens/ms), which is how a big request runs: the
   * basis of the deadline estimate (the rate of small batches would make it far too pessimistic).
   */
  private fullBatchTokensPerMs = 0;
  /** Room held by admitted requests whose inputs are not submitted yet. */
  private reservedInputs = 0;
  private reservedTokens = 0;
  /** Running averages of a request's size (from the first request on), which is what an admission reserves. */
  private avgInputs = 0;
  private avgTokens = 0;
  readonly stats: QueueStats = { queuedInputs: 0, queuedTokens: 0, batches: 0, rejectedOverloaded: 0, rejectedDeadline: 0, dropped: 0 };
  readonly limits: Readonly<QueueLimits>;
  private readonly unsubscribe: () => void;

  constructor(
    limits: QueueLimits,
    private readonly runner: BatchRunner,
    /**
     * The model: its name (in events), its index among the workers' graphs, and the values per
     * input in a result (the hidden size; 1 for a reranker's logit).
     */
    private readonly model: { id: string; index: number; width: number },
    /** Workers running batches in parallel, for the aggregate throughput. */
    private readonly parallelism = 1,
  ) {
    this.limits = Object.freeze({ ...limits });
    this.unsubscribe = runner.onIdle(() => this.pump());
    runner.attach?.(this);
  }

  /** Inputs waiting (not yet dispatched). */
  get waiting(): number {
    return this.stats.queuedInputs;
  }

  /** Worker milliseconds the waiting inputs need at the measured throughput (0 before any batch ran). */
  get backlogMs(): number {
    const rate = this.fullBatchTokensPerMs || this.tokensPerMs;
    return rate > 0 ? this.stats.queuedTokens / rate : 0;
  }

  /** When the oldest waiting input arrived (performance.now()); Infinity when none waits. */
  get oldestArrival(): number {
    for (const item of this.items) if (!item.job.settled) return item.job.enqueuedAt;
    return Infinity;
  }

  private reject(reason: RejectedEvent['reason'], inputs: number): void {
    publish('rejected', { model: this.model.id, reason, inputs });
  }

  submit(request: QueueRequest): Promise<QueueResult> {
    if (request.admission) this.release(request.admission);
    if (this.closed) {
      this.reject('shutting_down', request.inputs.length);
      return Promise.reject(new RuntimeError('SHUTTING_DOWN'));
    }
    if (request.signal?.aborted) {
      this.reject('cancelled', request.inputs.length);
      return Promise.reject(new RuntimeError('CANCELLED'));
    }
    const tokens = request.inputs.reduce((n, x) => n + x.ids.length, 0);
    if (request.inputs.length > 0) {
      this.avgInputs = this.avgInputs === 0 ? request.inputs.length : 0.8 * this.avgInputs + 0.2 * request.inputs.length;
      this.avgTokens = this.avgTokens === 0 ? tokens : 0.8 * this.avgTokens + 0.2 * tokens;
    }
    const late = this.lateness(request, tokens);
    if (late) {
      this.stats[late.code === 'DEADLINE_TOO_SHORT' ? 'rejectedDeadline' : 'rejectedOverloaded']++;
      this.reject(late.code === 'DEADLINE_TOO_SHORT' ? 'deadline' : 'queue_full', request.inputs.length);
      return Promise.reject(new RuntimeError(late.code, late.message, { drainMs: late.behindMs }));
    }
    const queueEmpty = this.stats.queuedInputs === 0;
    // An empty queue admits any request, so one larger than the bounds is still served.
    if (
      !queueEmpty &&
      (this.stats.queuedInputs + request.inputs.length > this.limits.maxQueueInputs ||
        this.stats.queuedTokens + tokens > this.limits.maxQueueTokens)
    ) {
      this.stats.rejectedOverloaded++;
      this.reject('queue_full', request.inputs.length);
      return Promise.reject(new RuntimeError('QUEUE_FULL', 'the queue is at capacity; retry later', { drainMs: this.drainMs() }));
    }
    if (request.inputs.length === 0) return Promise.resolve({ vectors: [], queueMs: 0, inferenceMs: 0 });
    return new Promise<QueueResult>((resolve, reject) => {
      const now = performance.now();
      const job = new Job(request, now, resolve, reject);
      const key = `${request.plan.layer}:${request.plan.tokenPrepending ? 1 : 0}`;
      request.inputs.forEach((input, index) => {
        this.items.push({
          job,
          index,
          ids: input.ids,
          skip: input.promptTokens,
          segment: input.segment ?? input.ids.length,
          plan: request.plan,
          key,
        });
      });
      job.queuedTokens = tokens;
      this.stats.queuedInputs += request.inputs.length;
      this.stats.queuedTokens += tokens;
      if (request.deadline !== undefined) {
        const wait = Math.max(0, request.deadline - now);
        job.timer = setTimeout(() => this.expire(job), wait);
      }
      if (request.signal) {
        job.onAbort = () => this.cancel(job, new RuntimeError('CANCELLED'), 'dropped');
        request.signal.addEventListener('abort', job.onAbort, { once: true });
      }
      this.pump();
    });
  }

  /**
   * Admits a request before any work is spent on it (parsing, tokenizing), reserving room for a
   * request of the average size, or refuses at once when the queue, with what admitted requests
   * have reserved, is full: under a flood of requests, refusals must stay cheap or they eat the
   * CPU the queued work needs, and an admitted request must find room when it is submitted.
   * `release` (or `submit` with the admission) gives the reservation back; it is idempotent.
   */
  admit(): Admission {
    if (this.closed) throw new RuntimeError('SHUTTING_DOWN');
    const idle = this.stats.queuedInputs === 0 && this.reservedInputs === 0;
    if (
      !idle &&
      (this.stats.queuedInputs + this.reservedInputs >= this.limits.maxQueueInputs ||
        this.stats.queuedTokens + this.reservedTokens >= this.limits.maxQueueTokens)
    ) {
      this.stats.rejectedOverloaded++;
      this.reject('queue_full', 0);
      throw new RuntimeError('QUEUE_FULL', 'the queue is at capacity; retry later', { drainMs: this.drainMs() });
    }
    const admission: Admission = {
      inputs: Math.max(1, Math.round(this.avgInputs)),
      tokens: Math.max(1, Math.round(this.avgTokens)),
      released: false,
    };
    this.reservedInputs += admission.inputs;
    this.reservedTokens += admission.tokens;
    return admission;
  }

  release(admission: Admission): void {
    if (admission.released) return;
    admission.released = true;
    this.reservedInputs -= admission.inputs;
    this.reservedTokens -= admission.tokens;
  }

  /**
   * Whether a request cannot finish by its deadline at the measured throughput: alone (it is too
   * big for its deadline: no retry helps) or behind the work ahead of it (retry later): this
   * model's queue, and the other models' work the shared workers will run meanwhile (the runner's
   * policy decides how much: all that is older under fifo, an equal share under fair). Once a
   * request is queued its work is finished even if that runs past the deadline; only a request
   * none of whose work has started is dropped at its deadline. Undecided until a batch has run.
   */
  private lateness(
    request: QueueRequest,
    tokens: number,
  ): { code: 'DEADLINE_TOO_SHORT' | 'DEADLINE_BEHIND_QUEUE'; message: string; behindMs: number } | undefined {
    if (request.deadline === undefined || this.fullBatchTokensPerMs <= 0 || tokens === 0) return undefined;
    const perWorker = this.fullBatchTokensPerMs;
    const left = request.deadline - performance.now();
    // Worker milliseconds: this request's, this queue's waiting work, the other models' meanwhile.
    const ownMs = tokens / perWorker;
    const queuedMs = this.stats.queuedTokens / perWorker;
    const othersMs = this.runner.contendedMs?.(queuedMs + ownMs) ?? 0;
    const own = ownMs / this.parallelism;
    const behind = (queuedMs + othersMs) / this.parallelism;
    if (own > left) {
      return {
        code: 'DEADLINE_TOO_SHORT',
        message:
          `this request needs about ${Math.ceil(own)} ms of inference (${tokens} tokens at the measured ${Math.round(perWorker * this.parallelism * 1000)} tokens/s) ` +
          `but its deadline is ${Math.max(0, Math.floor(left))} ms away: split it into smaller requests or allow more time (x-request-timeout-ms)`,
        behindMs: behind,
      };
    }
    if (own + behind > left) {
      const shared = othersMs > 0 ? `, ${Math.ceil(othersMs / this.parallelism)} ms of it for other models sharing the workers` : '';
      return {
        code: 'DEADLINE_BEHIND_QUEUE',
        message: `the queued work (about ${Math.ceil(behind)} ms${shared}) would keep this request from finishing by its deadline; retry later`,
        behindMs: behind,
      };
    }
    return undefined;
  }

  /** How long what is queued should take to drain at the recent throughput (0 before any batch ran). */
  private drainMs(): number {
    return this.tokensPerMs > 0 ? this.stats.queuedTokens / this.tokensPerMs : 0;
  }

  private expire(job: Job): void {
    job.timer = null;
    // Once any of a request's work has started, all of it is finished: computing most of a
    // request and then answering 504 would throw that work away. Only untouched requests expire.
    if (job.settled || job.firstStart >= 0) return;
    this.stats.rejectedDeadline++;
    this.reject('deadline', job.queued);
    this.cancel(job, new RuntimeError('DEADLINE_EXCEEDED', 'the request deadline passed before its work could start'), null);
  }

  /**
   * Settles a job with an error. Its waiting inputs stop counting against the queue's bounds at
   * once; they leave `items` when the next batch forms (see `skipSettled`).
   */
  private cancel(job: Job, err: Error, counter: 'dropped' | null): void {
    if (job.settled) return;
    if (counter && job.queued > 0) {
      this.stats[counter]++;
      this.reject('cancelled', job.queued);
    }
    this.settle(job, err);
    this.stats.queuedInputs -= job.queued;
    this.stats.queuedTokens -= job.queuedTokens;
    this.skipped += job.queued;
    job.queued = 0;
    job.queuedTokens = 0;
    // Under a flood of cancellations with every worker busy, do not let dead entries pile up.
    if (this.skipped > 1024 && this.skipped > this.items.length / 2) this.skipSettled();
  }

  /** The one place that decides what a batch may take: inputs whose request has settled are dropped. */
  private skipSettled(): void {
    if (this.skipped === 0) return;
    this.items = this.items.filter((item) => !item.job.settled);
    this.skipped = 0;
  }

  private settle(job: Job, outcome: Error | QueueResult): void {
    job.settled = true;
    if (job.timer) clearTimeout(job.timer);
    if (job.onAbort) job.request.signal?.removeEventListener('abort', job.onAbort);
    if (outcome instanceof Error) job.reject(outcome);
    else job.resolve(outcome);
  }

  /** Starts batches while workers are free and work is waiting. */
  private pump(): void {
    this.skipSettled();
    while (this.runner.idle > 0 && this.items.length > 0) {
      const picked = this.pick();
      if (picked.underFull && this.limits.maxDelayMs > 0) {
        const waited = performance.now() - this.items[0]!.job.enqueuedAt;
        if (waited < this.limits.maxDelayMs) {
          this.delayTimer ??= setTimeout(() => {
            this.delayTimer = null;
            this.pump();
          }, this.limits.maxDelayMs - waited);
          return;
        }
      }
      this.dispatch(picked.indices);
    }
  }

  /**
   * Chooses the next batch: indices into `items`, oldest input first, growing towards the inputs
   * closest in length while the budget allows. `underFull` says whether more could have fitted.
   */
  private pick(): { indices: number[]; underFull: boolean } {
    const head = this.items[0]!;
    const window: number[] = [];
    const end = Math.min(this.items.length, this.limits.lookahead);
    for (let i = 0; i < end; i++) if (this.items[i]!.key === head.key) window.push(i);
    window.sort((a, b) => this.items[a]!.ids.length - this.items[b]!.ids.length || a - b);
    const at = window.indexOf(0);
    const lenOf = (w: number): number => this.items[window[w]!]!.ids.length;
    const fits = (count: number, longest: number): boolean =>
      count <= this.limits.maxBatchSize && count * longest <= this.limits.maxBatchTokens;
    let lo = at;
    let hi = at;
    let longest = lenOf(at);
    for (;;) {
      const count = hi - lo + 2;
      const down = lo > 0 && fits(count, longest) ? lo - 1 : -1;
      const up = hi < window.length - 1 && fits(count, Math.max(longest, lenOf(hi + 1))) ? hi + 1 : -1;
      if (down < 0 && up < 0) break;
      const headLen = lenOf(at);
      const takeDown = down >= 0 && (up < 0 || headLen - lenOf(down) <= lenOf(up) - headLen);
      if (takeDown) lo = down;
      else {
        hi = up;
        longest = Math.max(longest, lenOf(up));
      }
    }
    const indices = window.slice(lo, hi + 1);
    const count = indices.length;
    const couldGrow = count < this.limits.maxBatchSize && (count + 1) * longest <= this.limits.maxBatchTokens;
    return { indices, underFull: couldGrow && window.length === count };
  }

  private dispatch(indices: number[]): void {
    const chosen = new Set(indices);
    const batch = indices.map((i) => this.items[i]!);
    this.items = this.items.filter((_, i) => !chosen.has(i));
    let total = 0;
    let longest = 0;
    const started = performance.now();
    for (const item of batch) {
      total += item.ids.length;
      longest = Math.max(longest, item.ids.length);
      item.job.queued--;
      item.job.queuedTokens -= item.ids.length;
      if (item.job.firstStart < 0) item.job.firstStart = started;
    }
    this.stats.queuedInputs -= batch.length;
    this.stats.queuedTokens -= total;
    this.stats.batches++;
    const shape = { model: this.model.id, size: batch.length, paddedTokens: batch.length * longest, realTokens: total };
    publish('batchFormed', shape);
    const ids = new Int32Array(total);
    const lengths = new Int32Array(batch.length);
    const skips = new Int32Array(batch.length);
    const segments = new Int32Array(batch.length);
    let offset = 0;
    batch.forEach((item, b) => {
      ids.set(item.ids, offset);
      offset += item.ids.length;
      lengths[b] = item.ids.length;
      skips[b] = item.skip;
      segments[b] = item.segment;
    });
    this.running++;
    this.runner
      .run({ model: this.model.index, ids, lengths, skips, segments, plan: batch[0]!.plan })
      .finally(() => this.running--)
      .then(
        (result) => {
          const ended = performance.now();
          const elapsed = Math.max(ended - started, 1e-3);
          const rate = total / elapsed;
          this.tokensPerMs = this.tokensPerMs === 0 ? rate : 0.8 * this.tokensPerMs + 0.2 * rate;
          if (batch.length * longest * 2 >= this.limits.maxBatchTokens) {
            this.fullBatchTokensPerMs = this.fullBatchTokensPerMs === 0 ? rate : 0.8 * this.fullBatchTokensPerMs + 0.2 * rate;
          }
          publish('batchDone', { ...shape, inferenceMs: result.inferenceMs });
          const h = this.model.width;
          batch.forEach((item, b) => {
            const job = item.job;
            if (job.settled) return;
            job.vectors[item.index] = result.vectors.subarray(b * h, (b + 1) * h);
            job.lastEnd = ended;
            if (--job.remaining === 0) {
              this.settle(job, {
                vectors: job.vectors,
                queueMs: job.firstStart - job.enqueuedAt,
                inferenceMs: job.lastEnd - job.firstStart,
              });
            }
          });
        },
        (err: Error) => {
          for (const item of batch) this.cancel(item.job, err, null);
        },
      );
  }

  /** Refuses new work; with `drain`, waits until everything queued or running has settled. */
  async close(drainMs = 0): Promise<void> {
    this.closed = true;
    const deadline = performance.now() + drainMs;
    while ((this.stats.queuedInputs > 0 || this.running > 0) && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    if (this.delayTimer) clearTimeout(this.delayTimer);
    this.unsubscribe();
    this.runner.detach?.(this);
    const left = new Set(this.items.map((i) => i.job).filter((job) => !job.settled));
    for (const job of left) {
      this.reject('shutting_down', job.queued);
      this.cancel(job, new RuntimeError('SHUTTING_DOWN'), null);
    }
    this.skipSettled();
  }
}
