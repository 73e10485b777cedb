/** Shared test fixtures: model paths, the optional ../shared assets, and a server on loopback. */
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { CollectionStore } from '../src/index/index.js';
import { Engine, type EngineOptions, type ModelEntry, type RuntimeOptions } from '../src/runtime/engine.js';
import { Models } from '../src/runtime/models.js';
import { type AppOptions, buildApp, type ServerLimits } from '../src/server/app.js';

export const ROOT = resolve(import.meta.dirname, '..');
export const TINY_BERT = join(ROOT, 'tests/fixtures/models/tiny-bert');
export const TINY_DECODER = join(ROOT, 'tests/fixtures/models/tiny-decoder');
export const TINY_RERANKER = join(ROOT, 'tests/fixtures/models/tiny-reranker');
export const DEFAULT_MODEL = join(ROOT, 'models/default');
export const SHARED = resolve(ROOT, '../shared');
export const SHARED_ASSETS = join(SHARED, 'assets');
export const hasShared = existsSync(SHARED_ASSETS);
export const SHARED_SKIP_REASON = `../shared/assets not found at ${SHARED_ASSETS}: skipping tests that need the shared tokenizer and evaluation assets`;

export interface BertReference {
  sentences: string[];
  token_ids: number[][];
  max_length: number;
  pooled: Record<'mean' | 'cls' | 'max' | 'last', number[][]>;
  layers: Record<string, Record<'mean' | 'cls', number[][]>>;
  long_sentence: { sentence: string; token_ids: number[]; mean: number[]; untruncated_length: number };
}

export function readReference<T>(modelDir: string): T {
  return JSON.parse(readFileSync(join(modelDir, 'reference.json'), 'utf8')) as T;
}

/** A copy of a model directory with some files replaced, for variants (pooling, limits, broken files). */
export function modelVariant(base: string, files: Record<string, string | null>): string {
  const dir = mkdtempSync(join(tmpdir(), 'model-'));
  cpSync(base, dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    if (content === null) cpSync('/dev/null', path);
    else writeFileSync(path, content);
  }
  return dir;
}

export function normalized(v: ArrayLike<number>, dims = v.length): number[] {
  const out = Array.from({ length: dims }, (_, i) => v[i]!);
  const n = Math.sqrt(out.reduce((s, x) => s + x * x, 0));
  return out.map((x) => x / n);
}

/**
 * The tests' cosine, the instrument parity tests measure with, so computed apart from the code they
 * test (src/pooling's cosine): each vector normalised first, then the dot product. Vectors of
 * different lengths throw, and a zero vector gives NaN, which fails every comparison (src answers 0).
 */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`cosine of vectors of ${a.length} and ${b.length} dimensions`);
  const [x, y] = [normalized(a), normalized(b)];
  return x.reduce((s, v, i) => s + v * y[i]!, 0);
}

export interface TestServer {
  url: string;
  app: FastifyInstance;
  engine: Engine;
  /** The collections, when the server was started with `store: true`. */
  store?: CollectionStore;
  close(): Promise<void>;
}

/**
 * Builds the app over `served` (with a fresh collection store when `store: true`) and listens on
 * an ephemeral loopback port; `close` stops the app, then the store, then `served`.
 */
async function serveOnLoopback(
  served: { close(): Promise<void> },
  appOptions: Omit<AppOptions, 'limits' | 'store'> & { store?: boolean },
  limits: Partial<ServerLimits>,
): Promise<Omit<TestServer, 'engine'>> {
  const { store: withStore, ...rest } = appOptions;
  const store = withStore ? await CollectionStore.open(mkdtempSync(join(tmpdir(), 'collections-'))) : undefined;
  const app = await buildApp({ ...rest, limits, store });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    app,
    store,
    async close() {
      await app.close();
      await store?.close();
      await served.close();
    },
  };
}

/**
 * Loads an engine and serves it on an ephemeral loopback port; with `store: true` the collection
 * routes are on too, over a fresh data directory.
 */
export async function startServer(
  engineOptions: Partial<EngineOptions> & { modelDir: string },
  limits: Partial<ServerLimits> = {},
  appOptions: Omit<AppOptions, 'embedder' | 'limits' | 'store'> & { store?: boolean } = {},
): Promise<TestServer> {
  const engine = await Engine.load({ workers: 1, intraOpThreads: 1, ...engineOptions });
  await engine.warmUp();
  return { ...(await serveOnLoopback(engine, { ...appOptions, embedder: engine }, limits)), engine };
}

/** Several models in one process (MODELS=...), served on an ephemeral loopback port. */
export async function startModelsServer(
  entries: ModelEntry[],
  runtime: RuntimeOptions = {},
  limits: Partial<ServerLimits> = {},
  appOptions: Omit<AppOptions, 'embedder' | 'models' | 'limits' | 'store'> & { store?: boolean } = {},
): Promise<TestServer & { models: Models }> {
  const models = await Models.load({ workers: 1, intraOpThreads: 1, ...runtime, models: entries });
  await models.warmUp();
  return { ...(await serveOnLoopback(models, { ...appOptions, models }, limits)), engine: models.default, models };
}

export interface JsonReply {
  status: number;
  headers: Headers;
  /** The parsed body, or its text when it is not JSON. */
  json: any;
}

/** POSTs a JSON body (a string is sent as it is, so tests can send malformed JSON). */
export const postJson = (url: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonReply> =>
  sendJson('POST', url, body, headers);

/** PUTs a JSON body (creating a collection, for instance); a string is sent as it is. */
export const putJson = (url: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonReply> =>
  sendJson('PUT', url, body, headers);

async function sendJson(method: string, url: string, body: unknown, headers: Record<string, string>): Promise<JsonReply> {
  const res = await fetch(url, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, headers: res.headers, json };
}

// --- A whole server process (`npm start`'s entry point) ---------------------------------------------

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  url: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output: () => string;
  exited: Promise<number | null>;
}

/** A port free right now on loopback (the entry point refuses PORT=0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

/**
 * Starts the server's entry point over the tiny BERT model on a free loopback port, with a fresh
 * DATA_DIR unless `env` gives one, under a shell with `ulimit -n nofile` when given; resolves once
 * every model is ready.
 */
export async function startServerProcess(env: Record<string, string>, nofile?: number): Promise<ServerProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'server-data-'));
  const port = await freePort();
  const cmd = `${nofile ? `ulimit -n ${nofile} && ` : ''}exec "${process.execPath}" --import tsx src/server/main.ts`;
  const child = spawn('bash', ['-c', cmd], {
    cwd: ROOT,
    env: {
      ...process.env,
      MODEL_DIR: TINY_BERT,
      DATA_DIR: dataDir,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      WORKERS: '1',
      INTRA_OP_THREADS: '1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  for (let i = 0; i < 600; i++) {
    const m = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
    if (m && /ready: model/.test(out)) return { child, port: Number(m[1]), url: `http://127.0.0.1:${m[1]}`, output: () => out, exited };
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`server did not start:\n${out}`);
}
