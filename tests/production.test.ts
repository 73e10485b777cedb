/** Metrics, auth, CORS, load shedding and graceful shutdown. */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/runtime/engine.js';
import { type AppOptions, buildApp } from '../src/server/app.js';
import { loadApiKeys } from '../src/server/auth.js';
import { postJson, ROOT, TINY_BERT } from './helpers.js';

let engine: Engine;
const apps: FastifyInstance[] = [];
beforeAll(async () => {
  engine = await Engine.load({ modelDir: TINY_BERT, workers: 1, intraOpThreads: 1, limits: { maxQueueInputs: 2, maxDelayMs: 300 } });
  await engine.warmUp();
});
afterAll(async () => {
  for (const a of apps) await a.close();
  await engine?.close();
});

async function serve(options: Omit<AppOptions, 'embedder'> = {}): Promise<string> {
  const app = await buildApp({ embedder: engine, ...options });
  apps.push(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  return `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
}

describe('Prometheus metrics', () => {
  it('counts requests, batches, tokens and rejections under conventional names', async () => {
    const url = await serve();
    await postJson(`${url}/embed`, { inputs: ['one', 'two'] });
    const held = postJson(`${url}/embed`, { inputs: ['a', 'b'] });
    await new Promise((r) => setTimeout(r, 100));
    const refused = await postJson(`${url}/embed`, { inputs: ['c'] });
    expect(refused.status).toBe(429);
    await held;
    const res = await fetch(`${url}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    for (const name of [
      'embed_queue_depth',
      'embed_queue_tokens',
      'embed_batch_size_bucket',
      'embed_batch_tokens_bucket',
      'embed_batch_inference_duration_seconds_bucket',
      'embed_queue_duration_seconds_bucket',
      'embed_tokenization_duration_seconds_bucket',
      'embed_inference_duration_seconds_bucket',
      'embed_tokens_total',
      'embed_workers_alive',
      'embed_process_resident_memory_bytes',
      'embed_model_weight_file_bytes',
    ]) {
      expect(text).toContain(name);
    }
    expect(text).toMatch(/embed_http_requests_total\{route="\/embed",method="POST",status="200"\} [1-9]/);
    expect(text).toMatch(/embed_rejected_requests_total\{reason="overloaded"\} 1/);
    expect(text).toMatch(
      /embed_model_info\{model="default",provider="cpu",dimensions="64",layers="4",max_input_length="48",task="embed"\} 1/,
    );
    // The tiny model serves full depth from its stages: their weights live in the shared file.
    const shared = Number(/embed_model_weight_bytes\{model="default",variant="stages",storage="shared"\} (\d+)/.exec(text)?.[1]);
    const inline = Number(/embed_model_weight_bytes\{model="default",variant="stages",storage="inline"\} (\d+)/.exec(text)?.[1]);
    expect(shared).toBeGreaterThan(10 * inline);
    const tokens = Number(/embed_tokens_total\{model="default"\} (\d+)/.exec(text)![1]);
    expect(tokens).toBeGreaterThanOrEqual(4);
  });
});

describe('API keys', () => {
  it('guards every route but the public ones, comparing keys exactly', async () => {
    const url = await serve({ apiKeys: ['k1', 'second-key'] });
    const none = await postJson(`${url}/embed`, { inputs: 'x' });
    expect(none.status).toBe(401);
    expect(none.json).toEqual({ error: expect.any(String), error_type: 'unauthorized', error_code: 'API_KEY_MISSING' });
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    const wrong = await postJson(`${url}/embed`, { inputs: 'x' }, { authorization: 'Bearer k2' });
    expect([wrong.status, wrong.json.error_code]).toEqual([401, 'API_KEY_INVALID']);
    expect((await postJson(`${url}/embed`, { inputs: 'x' }, { authorization: 'Bearer k1x' })).status).toBe(401);
    expect((await postJson(`${url}/embed`, { inputs: 'x' }, { authorization: 'Basic k1' })).status).toBe(401);
    expect((await postJson(`${url}/embed`, { inputs: 'x' }, { authorization: 'Bearer second-key' })).status).toBe(200);
    expect((await fetch(`${url}/info`)).status).toBe(401);
    for (const open of ['/health', '/ready', '/metrics']) expect((await fetch(`${url}${open}`)).status).toBe(200);
  });

  it('reads keys from a file and a list', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'keys-')), 'keys');
    writeFileSync(file, '# team keys\nalpha\n  beta  \n\n');
    expect(loadApiKeys('gamma, alpha', file)).toEqual(['gamma', 'alpha', 'beta']);
  });
});

describe('CORS and request ids', () => {
  it('is off by default and on for configured origins', async () => {
    const off = await serve();
    const r1 = await fetch(`${off}/health`, { headers: { origin: 'https://app.example' } });
    expect(r1.headers.get('access-control-allow-origin')).toBeNull();
    const on = await serve({ corsOrigins: ['https://app.example'] });
    const r2 = await fetch(`${on}/health`, { headers: { origin: 'https://app.example' } });
    expect(r2.headers.get('access-control-allow-origin')).toBe('https://app.example');
    // A browser client may read every timing header the embedding routes send.
    const exposed = (r2.headers.get('access-control-expose-headers') ?? '').split(',').map((h) => h.trim());
    for (const h of [
      'x-request-id',
      'x-compute-tokens',
      'x-total-time',
      'x-tokenization-time',
      'x-queue-time',
      'x-inference-time',
      'retry-after',
    ])
      expect(exposed).toContain(h);
    const r3 = await fetch(`${on}/health`, { headers: { origin: 'https://evil.example' } });
    expect(r3.headers.get('access-control-allow-origin')).toBeNull();
    expect(r2.headers.get('x-request-id')).toBeTruthy();
  });
});

describe('load shedding', () => {
  it('sheds requests with 503 while the event loop lags, but never /health', async () => {
    const url = await serve({ limits: { maxEventLoopDelayMs: 20 } });
    // Block this process's event loop (the server's) for a while, as a CPU-bound burst would.
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      // busy
    }
    const [shed, health] = await Promise.all([postJson(`${url}/embed`, { inputs: 'x' }), fetch(`${url}/health`)]);
    expect(shed.status).toBe(503);
    expect(shed.json).toMatchObject({ error_type: 'unavailable', error_code: 'EVENT_LOOP_LAGGING' });
    expect(shed.headers.get('retry-after')).toBeTruthy();
    expect(health.status).toBe(200);
  });
});

describe('graceful shutdown', () => {
  it('on SIGTERM stops accepting, finishes queued work, and exits 0', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/server/main.ts')], {
      env: {
        ...process.env,
        MODEL_DIR: TINY_BERT,
        PORT: String(port),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'warn',
        MAX_QUEUE_DELAY_MS: '500',
        WORKERS: '1',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 200; i++) {
      const ok = await fetch(`${url}/ready`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // These wait in the queue (500 ms batching delay) when SIGTERM arrives.
    const inflight = Array.from({ length: 5 }, (_, i) => postJson(`${url}/embed`, { inputs: `queued ${i}` }));
    await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGTERM');
    const answers = await Promise.all(inflight);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
    expect(await exited).toBe(0);
    await expect(fetch(`${url}/health`)).rejects.toThrow();
  });
});
