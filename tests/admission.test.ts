/**
 * Admission and deadlines in the batch queue (issue 13, points 6 and 10), driven by a fake worker
 * pool whose batches take a set time, so that throughput and timing are known exactly.
 */
import { describe, expect, it } from 'vitest';
import { RuntimeError } from '../src/runtime/errors.js';
import type { BatchInput } from '../src/runtime/pool.js';
import type { ResultMessage } from '../src/runtime/protocol.js';
import { BatchQueue, type BatchRunner, type QueueLimits } from '../src/runtime/queue.js';
import { Scheduler, type SchedulingPolicy } from '../src/runtime/scheduler.js';
import { FAST_REFUSALS_PER_S, MAX_REFUSAL_HOLD_MS, MIN_REFUSAL_HOLD_MS } from '../src/server/admission.js';
import { postJson, startModelsServer, startServer, TINY_BERT } from './helpers.js';

const HIDDEN = 4;
const MODEL = { id: 'fake', index: 0, width: HIDDEN };
const PLAN = { layer: 1, tokenPrepending: false };

/** One fake worker: a batch takes `msPerBatch`, or never finishes while `hold` is set. */
class FakeRunner implements BatchRunner {
  idle = 1;
  private listener: () => void = () => {};
  onIdle(listener: () => void): () => void {
    this.listener = listener;
    return () => {
      this.listener = () => {};
    };
  }
  msPerBatch = 50;
  hold = false;
  started: number[] = [];
  run(batch: BatchInput): Promise<ResultMessage> {
    this.idle--;
    this.started.push(performance.now());
    const n = batch.lengths.length;
    return new Promise((resolve) => {
      const finish = () => {
        this.idle++;
        resolve({ type: 'result', batchId: 0, vectors: new Float32Array(n * HIDDEN).fill(1), inferenceMs: this.msPerBatch });
        queueMicrotask(() => this.listener());
      };
      if (!this.hold) setTimeout(finish, this.msPerBatch);
    });
  }
}

const limits = (over: Partial<QueueLimits> = {}): QueueLimits => ({
  maxBatchSize: 4,
  maxBatchTokens: 40,
  maxDelayMs: 0,
  maxQueueInputs: 64,
  maxQueueTokens: 100_000,
  lookahead: 64,
  ...over,
});

const inputs = (n: number, tokens = 10) => Array.from({ length: n }, () => ({ ids: new Int32Array(tokens).fill(7), promptTokens: 0 }));

function kind(err: unknown): string {
  return err instanceof RuntimeError ? err.code : String(err);
}

describe('admission reserves room before the body is parsed (point 10)', () => {
  it('admits no more requests than the queue will take, so none is refused after tokenizing', async () => {
    const runner = new FakeRunner();
    runner.hold = true; // the worker stays busy: everything submitted waits in the queue
    const q = new BatchQueue(limits({ maxQueueInputs: 92 }), runner, MODEL);
    void q.submit({ inputs: inputs(32), plan: PLAN }).catch(() => undefined); // 4 run, 28 wait
    void q.submit({ inputs: inputs(32), plan: PLAN }).catch(() => undefined); // 60 of 92 wait; requests average 32
    expect(q.stats.queuedInputs).toBe(60);
    // Room for one more request of the average size: one admission, then refusals, cheaply.
    const a = q.admit();
    expect(() => q.admit()).toThrow(expect.objectContaining({ code: 'QUEUE_FULL' }));
    expect(q.stats.rejectedOverloaded).toBe(1);
    // The admitted request still finds its room when its (tokenized) inputs arrive.
    const submitted = q.submit({ inputs: inputs(32), plan: PLAN, admission: a });
    expect(q.stats.queuedInputs).toBe(92);
    // A request that ends before submitting (a 422, a disconnect) gives its room back, once.
    const b = (() => {
      try {
        return q.admit();
      } catch (err) {
        return kind(err);
      }
    })();
    expect(b).toBe('QUEUE_FULL');
    void submitted.catch(() => undefined);
    await q.close(0);
  });

  it('releases a reservation exactly once', () => {
    const runner = new FakeRunner();
    runner.hold = true;
    const q = new BatchQueue(limits({ maxQueueInputs: 36 }), runner, MODEL);
    void q.submit({ inputs: inputs(20), plan: PLAN }).catch(() => undefined); // 4 run, 16 wait
    expect(q.stats.queuedInputs).toBe(16);
    const a = q.admit();
    expect(() => q.admit()).toThrow(/capacity/);
    q.release(a);
    q.release(a);
    const b = q.admit();
    expect(() => q.admit()).toThrow(/capacity/);
    q.release(b);
    void q.close(0);
  });
});

describe('deadlines: refused up front, or finished once started (point 6)', () => {
  async function warmQueue(msPerBatch = 50): Promise<{ q: BatchQueue; runner: FakeRunner }> {
    const runner = new FakeRunner();
    runner.msPerBatch = msPerBatch;
    const q = new BatchQueue(limits({ maxQueueInputs: 10_000 }), runner, MODEL);
    // Two full batches (4 × 10 tokens in 50 ms): the queue measures about 0.8 tokens/ms.
    await q.submit({ inputs: inputs(8), plan: PLAN });
    return { q, runner };
  }

  it('refuses with 413 a request that cannot finish by its deadline even alone, before running any of it', async () => {
    const { q, runner } = await warmQueue();
    const before = runner.started.length;
    const err = await q.submit({ inputs: inputs(100), plan: PLAN, deadline: performance.now() + 300 }).catch((e: unknown) => e);
    expect(kind(err)).toBe('DEADLINE_TOO_SHORT');
    expect((err as Error).message).toMatch(
      /needs about \d+ ms of inference \(1000 tokens at the measured \d+ tokens\/s\) but its deadline is \d+ ms away: split it/,
    );
    expect(runner.started.length).toBe(before); // nothing of it ran
    await q.close(0);
  });

  it('refuses with 429 when the work queued ahead would make it late', async () => {
    const { q, runner } = await warmQueue();
    runner.hold = true;
    void q.submit({ inputs: inputs(40), plan: PLAN }).catch(() => undefined); // 360 tokens wait: about 450 ms
    const err = await q.submit({ inputs: inputs(4), plan: PLAN, deadline: performance.now() + 300 }).catch((e: unknown) => e);
    expect(kind(err)).toBe('DEADLINE_BEHIND_QUEUE');
    expect((err as RuntimeError).details.drainMs).toBeGreaterThan(0);
    await q.close(0);
  });

  it('finishes every batch of a request once its first has started, even past its deadline', async () => {
    const { q, runner } = await warmQueue(20);
    // Measured at 20 ms per batch: 3 batches are estimated at about 60 ms (well under the 600 ms
    // deadline even if timers lag); the worker then slows down to 400 ms per batch, so the third
    // batch starts at ~800 ms, after the deadline.
    runner.msPerBatch = 400;
    const t0 = performance.now();
    const result = await q.submit({ inputs: inputs(12), plan: PLAN, deadline: t0 + 600 });
    expect(result.vectors).toHaveLength(12);
    expect(runner.started.at(-1)! - t0).toBeGreaterThan(600);
    await q.close(0);
  });

  it('still drops a request none of whose work started by its deadline (504)', async () => {
    const { q, runner } = await warmQueue();
    runner.hold = true;
    void q.submit({ inputs: inputs(1), plan: PLAN }).catch(() => undefined); // the worker never comes back
    const err = await q.submit({ inputs: inputs(1), plan: PLAN, deadline: performance.now() + 100 }).catch((e: unknown) => e);
    expect(kind(err)).toBe('DEADLINE_EXCEEDED');
    await q.close(0);
  });
});

describe('deadline admission with several models sharing the workers (point 6, MODELS)', () => {
  /** Two models' queues over one fake worker through the scheduler, each measured at 0.8 tokens/ms. */
  async function twoModels(policy: SchedulingPolicy): Promise<{ a: BatchQueue; b: BatchQueue; runner: FakeRunner }> {
    const runner = new FakeRunner();
    const scheduler = new Scheduler(runner, policy);
    const a = new BatchQueue(limits({ maxQueueInputs: 10_000 }), scheduler.lane('a'), { id: 'a', index: 0, width: HIDDEN });
    const b = new BatchQueue(limits({ maxQueueInputs: 10_000 }), scheduler.lane('b'), { id: 'b', index: 1, width: HIDDEN });
    await a.submit({ inputs: inputs(8), plan: PLAN });
    await b.submit({ inputs: inputs(8), plan: PLAN });
    return { a, b, runner };
  }

  it("refuses with 429 a request for one model whose deadline the other model's older work (fifo) would make it miss", async () => {
    const { a, b, runner } = await twoModels('fifo');
    runner.hold = true;
    void a.submit({ inputs: inputs(40), plan: PLAN }).catch(() => undefined); // 360 tokens of model a wait: about 450 ms
    const err = await b.submit({ inputs: inputs(4), plan: PLAN, deadline: performance.now() + 300 }).catch((e: unknown) => e);
    expect(kind(err)).toBe('DEADLINE_BEHIND_QUEUE');
    expect((err as Error).message).toMatch(/about \d+ ms, \d+ ms of it for other models sharing the workers/);
    expect((err as RuntimeError).details.drainMs).toBeGreaterThan(300);
    // Model a's own queue refuses the same way; nothing of b was queued.
    expect(kind(await a.submit({ inputs: inputs(4), plan: PLAN, deadline: performance.now() + 300 }).catch((e: unknown) => e))).toBe(
      'DEADLINE_BEHIND_QUEUE',
    );
    expect(b.waiting).toBe(0);
    await a.close(0);
    await b.close(0);
  });

  it('under fair sharing counts the other model only for its share: a small request is admitted, a large one refused', async () => {
    const { a, b, runner } = await twoModels('fair');
    runner.hold = true;
    void a.submit({ inputs: inputs(40), plan: PLAN }).catch(() => undefined); // 360 tokens of model a wait
    // 40 tokens of b (50 ms) share the worker with as much of a's: about 100 ms, inside 300 ms.
    const small = b.submit({ inputs: inputs(4), plan: PLAN, deadline: performance.now() + 300 });
    expect(b.waiting).toBe(4); // admitted and queued
    // 160 tokens of b (200 ms alone) alternate with 160 of a's: about 400 ms, past 300 ms. Before,
    // only b's own (empty) queue was counted and this was admitted, to miss its deadline.
    const err = await b.submit({ inputs: inputs(16), plan: PLAN, deadline: performance.now() + 300 }).catch((e: unknown) => e);
    expect(kind(err)).toBe('DEADLINE_BEHIND_QUEUE');
    runner.hold = false;
    await a.close(0);
    await b.close(0);
    await small.catch(() => undefined);
  });

  it('a model alone (no other queue busy) is judged on its own queue only', async () => {
    const { b, runner } = await twoModels('fifo');
    runner.hold = true;
    const ok = b.submit({ inputs: inputs(16), plan: PLAN, deadline: performance.now() + 1000 }); // 200 ms alone
    expect(b.waiting).toBeGreaterThan(0);
    runner.hold = false;
    await b.close(0);
    await ok.catch(() => undefined);
  });
});

describe('admission over HTTP with several models (MODELS)', () => {
  it('admits or refuses on the queue of the model the request names, on every route', async () => {
    const server = await startModelsServer(
      [
        { name: 'a', dir: TINY_BERT },
        { name: 'b', dir: TINY_BERT },
      ],
      { limits: { maxQueueInputs: 4 } },
    );
    try {
      const b = server.models.get('b')!;
      // Fill model b's queue with reservations (what admitted requests hold until they submit).
      const held = [];
      for (;;) {
        try {
          held.push(b.admit());
        } catch {
          break;
        }
      }
      expect(held.length).toBeGreaterThan(0);
      const calls: Array<[string, (model: string) => unknown]> = [
        ['/embed', (model) => ({ inputs: 'hello', model })],
        ['/v1/embeddings', (model) => ({ input: 'hello', model })],
        ['/api/embed', (model) => ({ input: 'hello', model })],
        ['/similarity', (model) => ({ inputs: { source_sentence: 'a', sentences: ['b'] }, model })],
      ];
      for (const [route, body] of calls) {
        const refused = await postJson(`${server.url}${route}`, body('b'));
        expect(refused.status, route).toBe(429);
        expect(refused.headers.get('retry-after'), route).not.toBeNull();
        expect((await postJson(`${server.url}${route}`, body('a'))).status, route).toBe(200);
        // The default model (a) is not the one a request for b is judged by, nor the other way round.
        expect((await postJson(`${server.url}${route}`, { ...(body('a') as object), model: undefined })).status, route).toBe(200);
      }
      for (const h of held) b.release(h);
      expect((await postJson(`${server.url}/embed`, { inputs: 'hello', model: 'b' })).status).toBe(200);
    } finally {
      await server.close();
    }
  }, 60_000);
});

describe('refusals under a flood of instant retries are paced (point 10)', () => {
  it(`answers at most ${FAST_REFUSALS_PER_S} refusals a second at once and holds the rest for their Retry-After`, async () => {
    const server = await startServer({ modelDir: TINY_BERT, limits: { maxQueueInputs: 4 } });
    try {
      const held = [];
      for (;;) {
        try {
          held.push(server.engine.admit());
        } catch {
          break;
        }
      }
      const t0 = performance.now();
      const answers = await Promise.all(
        Array.from({ length: 3 * FAST_REFUSALS_PER_S }, async () => {
          const res = await postJson(`${server.url}/embed`, { inputs: 'flood' });
          return { status: res.status, retryAfter: res.headers.get('retry-after'), ms: performance.now() - t0 };
        }),
      );
      for (const a of answers) {
        expect(a.status).toBe(429);
        expect(Number(a.retryAfter)).toBeGreaterThanOrEqual(1);
      }
      const fast = answers.filter((a) => a.ms < MIN_REFUSAL_HOLD_MS - 500).length;
      const slow = answers.filter((a) => a.ms >= MIN_REFUSAL_HOLD_MS - 100).length;
      // Every request arrives within a second or two: at most two windows of fast refusals.
      expect(fast).toBeGreaterThanOrEqual(1);
      expect(fast).toBeLessThanOrEqual(2 * FAST_REFUSALS_PER_S);
      expect(slow).toBe(answers.length - fast);
      expect(Math.max(...answers.map((a) => a.ms))).toBeLessThan(MAX_REFUSAL_HOLD_MS + 5000);
      for (const h of held) server.engine.release(h);
      expect((await postJson(`${server.url}/embed`, { inputs: 'after' })).status).toBe(200);
    } finally {
      await server.close();
    }
  }, 60_000);
});
