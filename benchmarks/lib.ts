/** Shared pieces of the benchmarks: the MiniLM-shaped model, raw ONNX Runtime, a service process. */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { graphInputs, padFeeds } from '../src/runtime/feeds.js';
import { loadTokenizer } from '../src/runtime/tokenize.js';

export const ROOT = resolve(import.meta.dirname, '..');
export const MINILM = join(ROOT, 'models/minilm-shaped');

/** Generates the MiniLM-L6-shaped benchmark model (not committed) when it is missing. */
export function ensureMiniLM(): string {
  if (!existsSync(join(MINILM, 'onnx/model.onnx'))) {
    console.error('generating models/minilm-shaped (needs Debian python3-torch, python3-onnx)…');
    const r = spawnSync('/usr/bin/python3', [join(ROOT, 'tools/make_test_models.py'), '--minilm', MINILM], { stdio: 'inherit' });
    if (r.status !== 0)
      throw new Error('could not generate models/minilm-shaped: install python3-torch python3-onnx libopenblas0-pthread with apt');
  }
  return MINILM;
}

export const MINILM_RERANKER = join(ROOT, 'models/minilm-reranker-shaped');

/** Generates the MiniLM-L6-shaped cross-encoder (not committed) when it is missing. */
export function ensureMiniLMReranker(): string {
  if (!existsSync(join(MINILM_RERANKER, 'onnx/model.onnx'))) {
    console.error('generating models/minilm-reranker-shaped (needs Debian python3-torch, python3-onnx)…');
    const r = spawnSync('/usr/bin/python3', [join(ROOT, 'tools/make_test_models.py'), '--minilm-reranker', MINILM_RERANKER], {
      stdio: 'inherit',
    });
    if (r.status !== 0)
      throw new Error('could not generate models/minilm-reranker-shaped: install python3-torch python3-onnx libopenblas0-pthread with apt');
  }
  return MINILM_RERANKER;
}

const WORDS =
  'the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were her she there been one all we their has would when if so no'.split(
    ' ',
  );

/** Deterministic sentences that tokenize to exactly `tokens` tokens (special tokens included). */
export async function sentencesOfLength(modelDir: string, tokens: number, count: number): Promise<string[]> {
  const tok = loadTokenizer(join(modelDir, 'tokenizer.json'), null);
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) {
    const words: string[] = [];
    for (let w = 0; w < tokens * 2; w++) words.push(WORDS[(i * 7 + w * 13 + ((w * w) % 5)) % WORDS.length]!);
    // Grow word by word until the count is exact.
    for (let n = 1; n <= words.length; n++) {
      const text = words.slice(0, n).join(' ');
      const len = (await tok.encode(text)).getLength();
      if (len === tokens) {
        out.push(text);
        break;
      }
      if (len > tokens) break;
    }
  }
  return out;
}

/**
 * The benchmark batch: `batch` rows of `tokens` ids (1000 + i mod 500, no padding), built by the
 * service's feed builder and typed as the graph declares its inputs.
 */
function benchFeeds(session: ort.InferenceSession, batch: number, tokens: number): Record<string, ort.Tensor> {
  const rows = Array.from({ length: batch }, (_, b) => Int32Array.from({ length: tokens }, (_, t) => 1000 + ((b * tokens + t) % 500)));
  return padFeeds(rows, graphInputs(session)).feeds;
}

function rawSession(onnxPath: string, threads: number): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(onnxPath, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
}

/** Sequences/s of `session` on `feeds` over `seconds`, after one warm-up run. */
async function measure(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, batch: number, seconds: number): Promise<number> {
  await session.run(feeds);
  let done = 0;
  const start = performance.now();
  while (performance.now() - start < seconds * 1000) {
    await session.run(feeds);
    done += batch;
  }
  return done / ((performance.now() - start) / 1000);
}

/** Raw ONNX Runtime throughput (sequences/s) on one session: the limit the service is measured against. */
export async function rawThroughput(
  onnxPath: string,
  opts: { batch: number; tokens: number; seconds: number; threads: number },
): Promise<number> {
  const session = await rawSession(onnxPath, opts.threads);
  const rate = await measure(session, benchFeeds(session, opts.batch, opts.tokens), opts.batch, opts.seconds);
  await session.release();
  return rate;
}

/** The same measurement in a worker thread (plain JS, so it needs no TypeScript loader), on the feeds it is given. */
const RAW_WORKER = `
const { parentPort, workerData: o } = require('node:worker_threads');
const ort = require(o.ortPath);
(async () => {
  const session = await ort.InferenceSession.create(o.onnxPath, { intraOpNumThreads: o.threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  const feeds = Object.fromEntries(Object.entries(o.feeds).map(([name, t]) => [name, new ort.Tensor(t.type, t.data, t.dims)]));
  await session.run(feeds);
  parentPort.postMessage('warm');
  await new Promise((r) => parentPort.once('message', r));
  let done = 0;
  const start = performance.now();
  while (performance.now() - start < o.seconds * 1000) { await session.run(feeds); done += o.batch; }
  parentPort.postMessage(done / ((performance.now() - start) / 1000));
})();
`;

/**
 * The raw ONNX Runtime limit on this machine: the better of one session using every core and one
 * single-threaded session per core running side by side (summed), at the given batch size.
 */
export async function rawLimit(
  onnxPath: string,
  opts: { batch: number; tokens: number; seconds: number; cores: number },
): Promise<{ single: number; parallel: number; limit: number }> {
  const session = await rawSession(onnxPath, opts.cores);
  const feeds = benchFeeds(session, opts.batch, opts.tokens);
  const single = await measure(session, feeds, opts.batch, opts.seconds);
  await session.release();
  const ortPath = join(ROOT, 'node_modules/onnxruntime-node/dist/index.js');
  // The workers rebuild the same tensors from their data (a Tensor does not cross a thread).
  const plain = Object.fromEntries(Object.entries(feeds).map(([name, t]) => [name, { type: t.type, data: t.data, dims: t.dims }]));
  const workers = Array.from(
    { length: opts.cores },
    () => new Worker(RAW_WORKER, { eval: true, workerData: { ...opts, threads: 1, onnxPath, ortPath, feeds: plain } }),
  );
  await Promise.all(workers.map((w) => new Promise((r) => w.once('message', r))));
  const rates = await Promise.all(
    workers.map((w) => {
      const rate = new Promise<number>((r) => w.once('message', r));
      w.postMessage('go');
      return rate;
    }),
  );
  await Promise.all(workers.map((w) => w.terminate()));
  const parallel = rates.reduce((a, b) => a + b, 0);
  return { single, parallel, limit: Math.max(single, parallel) };
}

export interface Service {
  url: string;
  child: ChildProcess;
  /** Peak resident memory so far (kB), from /proc. */
  peakRssKb(): number;
  stop(): Promise<void>;
}

/** Starts the built service (dist/ of `root`, default this checkout) as a separate process and waits for /ready. */
export async function startService(env: Record<string, string>, port: number, root = ROOT): Promise<Service> {
  if (!existsSync(join(root, 'dist/server/main.js'))) throw new Error(`run \`npm run build\` in ${root} first`);
  const child = spawn(process.execPath, [join(root, 'dist/server/main.js')], {
    env: { ...process.env, LOG_LEVEL: 'warn', HOST: '127.0.0.1', PORT: String(port), ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/ready`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('service did not become ready');
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    child,
    peakRssKb() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

export const fmt = (n: number, digits = 1): string => n.toFixed(digits);
