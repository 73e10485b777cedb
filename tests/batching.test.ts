/** The batch queue and worker pool, driven through the real engine on a real ONNX model. */
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { Engine, type EngineOptions } from '../src/runtime/engine.js';
import { type BatchDoneEvent, subscribe } from '../src/runtime/events.js';
import { type BertReference, cosine, postJson, readReference, startServer, type TestServer, TINY_BERT } from './helpers.js';

const ref = readReference<BertReference>(TINY_BERT);
const sentences = ref.sentences;
const words = 'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu'.split(' ');
/** Texts of many different lengths, deterministic. */
const varied = Array.from({ length: 60 }, (_, i) => `${sentences[i % sentences.length]} ${words.slice(0, i % words.length).join(' ')}`);

let engines: Engine[] = [];
let servers: TestServer[] = [];
let unsubscribes: Array<() => void> = [];
afterEach(async () => {
  await Promise.all([...engines.map((e) => e.close()), ...servers.map((s) => s.close())]);
  for (const u of unsubscribes) u();
  engines = [];
  servers = [];
  unsubscribes = [];
});

async function engine(
  limits: EngineOptions['limits'],
  extra: Partial<EngineOptions> = {},
): Promise<{ e: Engine; batches: BatchDoneEvent[] }> {
  const e = await Engine.load({ modelDir: TINY_BERT, workers: 1, intraOpThreads: 1, limits, ...extra });
  engines.push(e);
  // The runtime publishes each finished batch; the tests subscribe as the metrics module does.
  const batches: BatchDoneEvent[] = [];
  unsubscribes.push(subscribe('batchDone', (b) => batches.push(b)));
  return { e, batches };
}

async function server(limits: EngineOptions['limits']): Promise<TestServer> {
  const s = await startServer({ modelDir: TINY_BERT, limits });
  servers.push(s);
  return s;
}

describe('dynamic batching', () => {
  it('sizes the token budget from a warm-up probe unless one is configured', async () => {
    const logs: string[] = [];
    const { e } = await engine({}, { log: (_l, m) => logs.push(m) });
    await e.warmUp();
    // The queue now runs with the budget the probe's own measurements select (rule: smallest within 10% of the best).
    const line = logs.find((m) => /batch token budget \d+ \(probe/.test(m))!;
    const measured = [...line.matchAll(/(\d+)→([\d.]+)/g)].map((m) => ({ budget: Number(m[1]), rate: Number(m[2]) }));
    expect(measured.length).toBeGreaterThan(0);
    const top = Math.max(...measured.map((m) => m.rate));
    const expected = measured.find((m) => m.rate >= 0.9 * top - 0.05)!.budget; // rates are logged to 0.1
    expect(e.info.limits.maxBatchTokens).toBe(Math.max(expected, e.spec.maxLength));
    expect(line).toContain(`batch token budget ${expected} `);
    const { e: fixed } = await engine({ maxBatchTokens: 3000 });
    await fixed.warmUp();
    expect(fixed.info.limits.maxBatchTokens).toBe(3000);
  });

  it('splits a large request across batches and reassembles it in order', async () => {
    const { e, batches } = await engine({ maxBatchSize: 8, maxDelayMs: 0 });
    const together = await e.embed(varied, {});
    expect(batches.length).toBeGreaterThanOrEqual(Math.ceil(varied.length / 8));
    expect(Math.max(...batches.map((b) => b.size))).toBeLessThanOrEqual(8);
    const alone = await Promise.all(varied.map(async (t) => (await e.embed([t], {})).vectors[0]!));
    together.vectors.forEach((v, i) => expect(cosine(v, alone[i]!)).toBeGreaterThan(0.99999));
    // Different texts give different vectors, so a shuffled order could not pass the check above.
    expect(cosine(together.vectors[0]!, together.vectors[1]!)).toBeLessThan(0.999);
  });

  it('coalesces concurrent requests from different clients into shared batches', async () => {
    const { e, batches } = await engine({ maxBatchSize: 64, maxDelayMs: 20 });
    const results = await Promise.all(varied.slice(0, 32).map((t) => e.embed([t], {})));
    expect(results).toHaveLength(32);
    expect(batches.length).toBeLessThan(8);
    expect(Math.max(...batches.map((b) => b.size))).toBeGreaterThan(4);
  });

  it('keeps every batch within the token budget; one input over it runs alone', async () => {
    const budget = 40;
    const { e, batches } = await engine({ maxBatchTokens: budget, maxDelayMs: 0 });
    await e.embed([...varied, ref.long_sentence.sentence], {});
    for (const b of batches) {
      if (b.size > 1) expect(b.paddedTokens).toBeLessThanOrEqual(budget);
    }
    expect(batches.some((b) => b.size === 1 && b.paddedTokens > budget)).toBe(true);
  });

  it('sorts by length within the look-ahead window to cut padding', async () => {
    const { e, batches } = await engine({ maxBatchSize: 8, maxDelayMs: 0 });
    // Alternate very short and very long inputs: first-come-first-served batches would be half padding.
    const alternating = Array.from({ length: 64 }, (_, i) => (i % 2 ? ref.long_sentence.sentence : 'hi'));
    await e.embed(alternating, {});
    const real = batches.reduce((s, b) => s + b.realTokens, 0);
    const padded = batches.reduce((s, b) => s + b.paddedTokens, 0);
    expect(real / padded).toBeGreaterThan(0.9);
  });

  it('refuses work with 429 and Retry-After when the queue is full', async () => {
    const s = await server({ maxQueueInputs: 4, maxDelayMs: 500, maxBatchSize: 64 });
    const first = postJson(`${s.url}/embed`, { inputs: ['a', 'b', 'c'] });
    await new Promise((r) => setTimeout(r, 150));
    const second = await postJson(`${s.url}/embed`, { inputs: ['d', 'e'] });
    expect(second.status).toBe(429);
    expect(second.json).toMatchObject({ error_type: 'overloaded', error_code: 'QUEUE_FULL' });
    expect(Number(second.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await first).status).toBe(200);
    expect(s.engine.stats.rejectedOverloaded).toBe(1);
  });

  it('times out work that has not started by its deadline with 504', async () => {
    const s = await server({ maxDelayMs: 1000 });
    const started = performance.now();
    const res = await postJson(`${s.url}/embed`, { inputs: 'waiting' }, { 'x-request-timeout-ms': '50' });
    expect(res.status).toBe(504);
    expect(res.json).toMatchObject({ error_type: 'timeout', error_code: 'DEADLINE_EXCEEDED' });
    expect(performance.now() - started).toBeLessThan(900);
    expect(s.engine.stats.rejectedDeadline).toBe(1);
    expect(s.engine.stats.queuedInputs).toBe(0);
  });

  it('drops the queued work of a client that disconnected before inference', async () => {
    const s = await server({ maxDelayMs: 400 });
    const before = s.engine.stats.batches;
    // A raw socket that goes away mid-request, as a client process that dies would.
    const url = new URL(`${s.url}/embed`);
    const req = request({
      host: url.hostname,
      port: url.port,
      path: url.pathname,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
    });
    const failed = new Promise<Error>((resolve) => req.on('error', resolve));
    req.end(JSON.stringify({ inputs: ['bye', 'now'] }));
    await new Promise((r) => setTimeout(r, 100));
    req.destroy();
    expect(await failed).toBeInstanceOf(Error);
    await new Promise((r) => setTimeout(r, 600));
    expect(s.engine.stats.dropped).toBe(1);
    expect(s.engine.stats.queuedInputs).toBe(0);
    expect(s.engine.stats.batches).toBe(before);
  });

  it('replaces a worker that dies mid-batch; its request fails with unavailable, later ones succeed', async () => {
    const { e } = await engine({ maxBatchSize: 2, maxDelayMs: 0 });
    e.crashNextBatch();
    await expect(
      e.embed(
        Array.from({ length: 20 }, () => ref.long_sentence.sentence),
        {},
      ),
    ).rejects.toMatchObject({ code: 'WORKER_FAILED' });
    // The replacement starts in the background; a request made meanwhile waits in the queue for it.
    const after = await e.embed(['still serving'], {});
    expect(after.vectors).toHaveLength(1);
    expect(e.stats.workerRestarts).toBe(1);
    expect(e.stats.workersAlive).toBe(1);
  });
});

describe('the budget probe rule (src/runtime/budget-probe.ts)', () => {
  it('keeps the smallest budget within 10% of the best rate, and stops once doubling stops paying', async () => {
    const { chooseBudget, stopMeasuring } = await import('../src/runtime/budget-probe.js');
    const m = (pairs: Array<[number, number]>) => pairs.map(([budget, rate]) => ({ budget, rate }));
    expect(
      chooseBudget(
        m([
          [512, 10],
          [1024, 19],
          [2048, 20],
          [4096, 20.5],
        ]),
        8192,
      ),
    ).toBe(1024);
    expect(
      chooseBudget(
        m([
          [512, 10],
          [1024, 12],
          [2048, 30],
        ]),
        8192,
      ),
    ).toBe(2048);
    expect(chooseBudget([], 8192)).toBe(8192);
    expect(
      stopMeasuring(
        m([
          [512, 10],
          [1024, 10.9],
        ]),
      ),
    ).toBe(true);
    expect(
      stopMeasuring(
        m([
          [512, 10],
          [1024, 11.1],
        ]),
      ),
    ).toBe(false);
    expect(stopMeasuring(m([[512, 10]]))).toBe(false);
  });
});
