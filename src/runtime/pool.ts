/**
 * The worker pool: a fixed number of inference workers, each running one batch at a time.
 *
 * Worker threads rather than child processes: batches and results move as transferred buffers
 * with no serialization, and a JavaScript exception or a failed `session.run` is contained in the
 * worker that raised it. The price is that a native crash inside ONNX Runtime (a segfault) takes
 * the whole process down; a supervisor (systemd, Docker's restart policy, Kubernetes) restarts it,
 * and the index's write-ahead log makes that restart lose nothing acknowledged. A worker that
 * exits or errors is replaced, and the batch it held fails with `unavailable` instead of hanging.
 */
import { Worker } from 'node:worker_threads';
import { RuntimeError } from './errors.js';
import { publish } from './events.js';
import type { BatchInput, FromWorker, ReadyMessage, ResultMessage, RunMessage, WorkerConfig } from './protocol.js';

export interface PoolOptions {
  /** The model's id, for the events the pool publishes. */
  model: string;
  workers: number;
  worker: WorkerConfig;
  /** Called with a line when a worker is replaced or a provider was skipped. */
  log?: (level: 'info' | 'warn' | 'error', msg: string) => void;
}

export type { BatchInput } from './protocol.js';

interface Slot {
  worker: Worker;
  ready: boolean;
  /** The batch this worker is running, if any. */
  inflight: { batchId: number; resolve: (r: ResultMessage) => void; reject: (e: Error) => void } | null;
}

/**
 * The worker's entry: the compiled file normally; under tsx (tests, `npm run dev`) the TypeScript
 * source, loaded through tsx's loader registered inside the worker (Node 20 does not pass an
 * `--import` loader to a worker's entry module).
 */
function createWorker(workerData: WorkerConfig): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./worker.js', import.meta.url), { workerData });
  const source = new URL('./worker.ts', import.meta.url).href;
  const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(source)}); })`;
  return new Worker(boot, { eval: true, workerData });
}

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private nextBatchId = 1;
  private closed = false;
  /** What the workers reported about the graphs (provider, and per model in config order); all agree on the graphs. */
  info!: ReadyMessage;
  /** Subscribers told whenever a worker becomes free to take a batch. */
  private readonly idleListeners = new Set<() => void>();
  /** Workers replaced after a failure, since start. */
  restarts = 0;
  /** Set by `crashNextBatch`: the next batch tells its worker to die instead of answering. */
  private crashNext = false;

  private constructor(private readonly options: PoolOptions) {}

  static async start(options: PoolOptions): Promise<WorkerPool> {
    const pool = new WorkerPool(options);
    const readies = Array.from({ length: options.workers }, () => pool.spawn());
    try {
      const infos = await Promise.all(readies);
      // Every worker runs the same finished graphs (description.ts), so they describe them alike;
      // one that does not is a bug, not a capability. A provider fallback in one worker is logged.
      const first = infos[0]!;
      if (infos.some((i) => JSON.stringify(i.models) !== JSON.stringify(first.models)))
        throw new Error(`inference workers describe the graphs differently: ${infos.map((i) => JSON.stringify(i.models)).join(' vs ')}`);
      const providers = [...new Set(infos.map((i) => i.provider))];
      if (providers.length > 1) options.log?.('warn', `inference workers run on different providers: ${providers.join(', ')}`);
      pool.info = first;
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  onIdle(listener: () => void): () => void {
    this.idleListeners.add(listener);
    return () => this.idleListeners.delete(listener);
  }

  private notifyIdle(): void {
    for (const listener of this.idleListeners) listener();
  }

  /** Workers ready and not running a batch. */
  get idle(): number {
    return this.slots.filter((s) => s.ready && !s.inflight).length;
  }

  get alive(): number {
    return this.slots.filter((s) => s.ready).length;
  }

  get size(): number {
    return this.options.workers;
  }

  private spawn(): Promise<ReadyMessage> {
    const worker = createWorker(this.options.worker);
    const slot: Slot = { worker, ready: false, inflight: null };
    this.slots.push(slot);
    return new Promise<ReadyMessage>((resolveReady, rejectReady) => {
      worker.on('message', (msg: FromWorker) => {
        switch (msg.type) {
          case 'ready':
            slot.ready = true;
            for (const line of msg.providerErrors) this.options.log?.('warn', `execution provider skipped: ${line}`);
            resolveReady(msg);
            this.notifyIdle();
            break;
          case 'init-error':
            rejectReady(new Error(msg.message));
            this.retire(slot, null);
            break;
          case 'result':
          case 'error': {
            const job = slot.inflight;
            if (!job || job.batchId !== msg.batchId) break;
            slot.inflight = null;
            if (msg.type === 'result') job.resolve(msg);
            else job.reject(new RuntimeError('INFERENCE_FAILED', `inference failed: ${msg.message}`));
            this.notifyIdle();
            break;
          }
        }
      });
      worker.on('error', (err) => {
        if (!slot.ready) rejectReady(err);
        this.retire(slot, err);
      });
      worker.on('exit', (code) => {
        if (!slot.ready) rejectReady(new Error(`inference worker exited with code ${code} before it was ready`));
        this.retire(slot, new Error(`inference worker exited with code ${code}`));
      });
    });
  }

  /** Removes a dead worker, fails its batch, and starts a replacement if it had been healthy. */
  private retire(slot: Slot, cause: Error | null): void {
    const at = this.slots.indexOf(slot);
    if (at < 0) return;
    this.slots.splice(at, 1);
    const wasReady = slot.ready;
    slot.ready = false;
    void slot.worker.terminate();
    if (slot.inflight) {
      slot.inflight.reject(new RuntimeError('WORKER_FAILED', `inference worker failed: ${cause?.message ?? 'exited'}`));
      slot.inflight = null;
    }
    if (this.closed || !wasReady) return;
    this.restarts++;
    publish('workerRestarted', { model: this.options.model, cause: cause?.message ?? 'exited' });
    this.options.log?.('error', `inference worker failed (${cause?.message ?? 'exited'}); starting a replacement`);
    this.spawn().catch((err: Error) => this.options.log?.('error', `replacement worker failed to start: ${err.message}`));
  }

  /** Runs a batch on an idle worker. The caller checks `idle > 0` first. */
  run(batch: BatchInput): Promise<ResultMessage> {
    const slot = this.slots.find((s) => s.ready && !s.inflight);
    if (!slot) return Promise.reject(new RuntimeError('WORKER_FAILED', 'no inference worker is free'));
    const batchId = this.nextBatchId++;
    return new Promise<ResultMessage>((resolve, reject) => {
      slot.inflight = { batchId, resolve, reject };
      const msg: RunMessage = { type: 'run', batchId, ...batch, ...(this.crashNext && { crash: true }) };
      this.crashNext = false;
      slot.worker.postMessage(
        msg,
        [batch.ids, batch.lengths, batch.skips, batch.segments].map((a) => a.buffer as ArrayBuffer),
      );
    });
  }

  /**
   * Failure drill: the worker that takes the next batch runs it, then dies with an uncaught error
   * instead of answering, as a worker that fails mid-batch would. (Terminating a worker from
   * outside while ONNX Runtime runs in it is not a safe way to simulate this: onnxruntime-node
   * then throws from native code into a dying environment, which aborts the whole process.)
   */
  crashNextBatch(): void {
    this.crashNext = true;
  }

  /** Stops the workers, after the batches they are running have finished (see crashNextBatch). */
  async close(waitMs = 30_000): Promise<void> {
    this.closed = true;
    const slots = this.slots.splice(0);
    const deadline = performance.now() + waitMs;
    while (slots.some((s) => s.inflight) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const s of slots) s.inflight?.reject(new RuntimeError('SHUTTING_DOWN'));
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
