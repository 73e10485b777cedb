/**
 * The scheduler: decides which model's queue fills the next free worker. Every served model has
 * its own queue and limits (queue.ts); all of them share the workers' cores through this one
 * place, so a flood of requests for one model cannot starve another.
 *
 * Each model's queue runs its batches through a `Lane`, which it sees as its batch runner: a lane
 * reports a free worker only while the scheduler gives the next batch to that lane's queue.
 *
 * `fair` (the default) is start-time fair queueing over worker time: each lane is charged the time
 * its batches occupy a worker (estimated from the model's recent milliseconds per padded token when
 * the batch starts, corrected by the measured time when it ends), and the next free worker goes to
 * the waiting lane charged least. A lane that was idle rejoins at the current virtual time, so
 * idleness banks no credit it could later spend starving the others. A lone request for a quiet
 * model therefore waits for the batches already running, not for the other model's whole backlog.
 *
 * `fifo` serves the oldest waiting input first whatever its model, as one shared queue would: the
 * behaviour fairness is measured against (benchmarks/RESULTS.md).
 */
import type { BatchInput } from './pool.js';
import type { ResultMessage } from './protocol.js';
import type { BatchRunner, QueueView } from './queue.js';

export type SchedulingPolicy = 'fair' | 'fifo';

/** One model's share of the workers: the batch runner its queue is given. */
export class Lane implements BatchRunner {
  queue: QueueView | null = null;
  /** Worker milliseconds charged so far (this lane's virtual time). */
  served = 0;
  /** Recent milliseconds per padded token of this model, 0 before its first batch. */
  msPerToken = 0;
  /** Batches running on workers. */
  inflight = 0;
  /** Had work waiting or running when the scheduler last looked. */
  active = false;
  /** Batches started, to tell whether a pump made progress. */
  started = 0;
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly scheduler: Scheduler,
    readonly name: string,
  ) {}

  get idle(): number {
    return this.scheduler.grants(this);
  }

  get waiting(): number {
    return this.queue?.waiting ?? 0;
  }

  attach(queue: QueueView): void {
    this.queue = queue;
  }

  detach(queue: QueueView): void {
    if (this.queue === queue) this.queue = null;
  }

  contendedMs(ownMs: number): number {
    return this.scheduler.contendedMs(this, ownMs);
  }

  onIdle(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Lets this lane's queue start what it can. */
  wake(): void {
    for (const listener of this.listeners) listener();
  }

  run(batch: BatchInput): Promise<ResultMessage> {
    let longest = 0;
    for (const len of batch.lengths) longest = Math.max(longest, len);
    // Measured before the run: the pool transfers the batch's buffers to the worker.
    const padded = batch.lengths.length * longest;
    const estimate = padded * this.scheduler.rate(this);
    this.scheduler.charge(this, estimate);
    this.inflight++;
    this.started++;
    const result = this.scheduler.runner.run(batch);
    result
      .then(
        (r) => {
          this.served += r.inferenceMs - estimate;
          const perToken = r.inferenceMs / Math.max(1, padded);
          this.msPerToken = this.msPerToken === 0 ? perToken : 0.8 * this.msPerToken + 0.2 * perToken;
        },
        () => {},
      )
      .finally(() => this.inflight--);
    return result;
  }
}

export class Scheduler {
  private readonly lanes: Lane[] = [];
  /** Virtual time: the start charge of the batch started last. */
  private now = 0;
  private pumping = false;
  private pumpQueued = false;

  constructor(
    /** The workers. */
    readonly runner: BatchRunner,
    readonly policy: SchedulingPolicy = 'fair',
  ) {
    runner.onIdle(() => this.pump());
  }

  /** A lane for one model's queue. */
  lane(name: string): Lane {
    const lane = new Lane(this, name);
    lane.served = this.now;
    this.lanes.push(lane);
    return lane;
  }

  /** Free workers `lane` may use now: all of them when its queue is the one to serve next, else none. */
  grants(lane: Lane): number {
    const idle = this.runner.idle;
    if (idle === 0) return 0;
    if (this.choose(this.holding) === lane) return idle;
    // Another queue comes first: make sure it is woken.
    this.schedulePump();
    return 0;
  }

  /** Queues that could not start a batch during the current pump (an under-full batch waiting for company). */
  private holding = new Set<Lane>();

  /** Starts batches, in the policy's order, while workers are free and work is waiting. */
  pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    this.holding = new Set();
    try {
      while (this.runner.idle > 0) {
        const lane = this.choose(this.holding);
        if (!lane) break;
        const before = lane.started;
        lane.wake();
        if (lane.started === before) this.holding.add(lane);
      }
    } finally {
      this.holding = new Set();
      this.pumping = false;
    }
  }

  private schedulePump(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    queueMicrotask(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  /**
   * Worker milliseconds of the other lanes' waiting work the workers will run before `ownMs` more
   * of `lane`'s is done: under fifo all of it (it is older than anything arriving now); under fair
   * each busy lane's share while `lane` has work, i.e. up to `ownMs` of each. The deadline
   * estimate of `lane`'s queue adds it to its own backlog.
   */
  contendedMs(lane: Lane, ownMs: number): number {
    let ms = 0;
    for (const other of this.lanes) {
      if (other === lane || !other.queue) continue;
      const backlog = other.queue.backlogMs;
      ms += this.policy === 'fifo' ? backlog : Math.min(backlog, ownMs);
    }
    return ms;
  }

  /** Charges a lane for a batch it starts, and moves virtual time to the batch's start. */
  charge(lane: Lane, ms: number): void {
    this.now = Math.max(this.now, lane.served);
    lane.served += ms;
  }

  /** Milliseconds per padded token to charge: the model's own rate, else the average of the known ones. */
  rate(lane: Lane): number {
    if (lane.msPerToken > 0) return lane.msPerToken;
    const known = this.lanes.filter((l) => l.msPerToken > 0);
    return known.length ? known.reduce((s, l) => s + l.msPerToken, 0) / known.length : 1e-3;
  }

  private choose(skip: ReadonlySet<Lane>): Lane | undefined {
    let best: Lane | undefined;
    for (const lane of this.lanes) {
      const active = lane.waiting > 0 || lane.inflight > 0;
      // Rejoining after idleness: no credit for the time it had nothing to do.
      if (active && !lane.active) lane.served = Math.max(lane.served, this.now);
      lane.active = active;
      if (skip.has(lane) || lane.waiting === 0) continue;
      if (!best || this.before(lane, best)) best = lane;
    }
    return best;
  }

  /** Whether `a` should be served before `b`. */
  private before(a: Lane, b: Lane): boolean {
    const oldest = (l: Lane): number => l.queue?.oldestArrival ?? Infinity;
    if (this.policy === 'fifo') return oldest(a) < oldest(b);
    if (a.served !== b.served) return a.served < b.served;
    if (a.inflight !== b.inflight) return a.inflight < b.inflight;
    return oldest(a) < oldest(b);
  }
}
