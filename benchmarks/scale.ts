/**
 * A million documents on one machine: the Matryoshka funnel (64-d graph + int8 full vectors)
 * against today's full-width float32 graph, through the real server over HTTP.
 *
 *   npm run build && flock /tmp/bench.lock nice npx tsx benchmarks/scale.ts [--n 1000000] [--configs funnel,full]
 *
 * (The RESULTS.md run measured both configurations one after the other in one process; the
 * first, side-by-side attempt of an earlier session is superseded.)
 *
 * Data: 384-d embedding-shaped vectors exactly as benchmarks/hnsw-recall.ts makes them
 * (tests/index/helpers.ts EmbeddingSpace), generated batch by batch so the client never holds
 * the corpus. The exact top-10 of every query over full-width float32 vectors is maintained
 * while generating (brute force), so recall is against exact full-width search.
 *
 * Per configuration it starts dist/server/main.js on a fresh DATA_DIR, upserts vectors over HTTP
 * (batches of 500, 3 in flight) and at each checkpoint prints: server RSS, recall@10 (default
 * search settings), p50/p99 search latency over HTTP (k 10, sequential), the insert rate since the
 * last checkpoint and bytes per vector of the newest snapshot's graph and vector files. At the end
 * it SIGKILLs the server and measures recovery (collection open, and until /ready), then stops it
 * gracefully and reports the final snapshot's sizes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { EmbeddingSpace } from '../tests/index/helpers.js';
import { ensureMiniLM, ROOT } from './lib.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '1000000' },
    configs: { type: 'string', default: 'funnel,full' },
    queries: { type: 'string', default: '100' },
    checkpoints: { type: 'string', default: '100000,250000,500000,1000000' },
  },
});
const N = Number(values.n);
const Q = Number(values.queries);
const CHECKPOINTS = values
  .checkpoints!.split(',')
  .map(Number)
  .filter((c) => c <= N);
if (!CHECKPOINTS.includes(N)) CHECKPOINTS.push(N);
const DIMS = 384;
const BATCH = 500;
const IN_FLIGHT = 3;
const K = 10;

const CONFIGS: Record<string, Record<string, unknown>> = {
  funnel: { dimensions: DIMS, index_dimensions: 64, storage: 'int8' },
  full: { dimensions: DIMS },
};

// The server must serve a 384-d model for 384-d collections: the MiniLM-shaped benchmark model.
const MODEL_DIR = ensureMiniLM();
const space = new EmbeddingSpace(2024, { dims: DIMS });
const queries = space.sample(Q, 99).vectors;
const batchVectors = (b: number): Float32Array[] => space.sample(Math.min(BATCH, N - b * BATCH), 1000 + b).vectors;

/** Exact top-K per query over everything generated so far (full width, float32 inputs). */
class Truth {
  private readonly ids: Int32Array[] = queries.map(() => new Int32Array(K).fill(-1));
  private readonly scores: Float64Array[] = queries.map(() => new Float64Array(K).fill(-Infinity));
  add(v: Float32Array, id: number): void {
    for (let q = 0; q < Q; q++) {
      const query = queries[q]!;
      let s = 0;
      for (let i = 0; i < DIMS; i++) s += query[i]! * v[i]!;
      const sc = this.scores[q]!;
      if (s <= sc[K - 1]!) continue;
      const ids = this.ids[q]!;
      let j = K - 1;
      while (j > 0 && sc[j - 1]! < s) {
        sc[j] = sc[j - 1]!;
        ids[j] = ids[j - 1]!;
        j--;
      }
      sc[j] = s;
      ids[j] = id;
    }
  }
  sets(): Set<string>[] {
    return this.ids.map((ids) => new Set(Array.from(ids, (i) => `v${i}`)));
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

interface Server {
  child: ChildProcess;
  url: string;
  /** ms the collection took to open (from the server's log), once known. */
  openMs: Promise<number>;
  readyMs: number;
}

async function startServer(dataDir: string): Promise<Server> {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(process.execPath, [join(ROOT, 'dist/server/main.js')], {
    env: {
      ...process.env,
      LOG_LEVEL: 'info',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATA_DIR: dataDir,
      MODEL_DIR,
      LAYER_EXIT: 'off',
      WORKERS: '1',
      BODY_LIMIT: String(16 << 20),
      MAX_EVENT_LOOP_DELAY_MS: '0',
      REQUEST_TIMEOUT_MS: '600000',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let buf = '';
  const openMs = new Promise<number>((resolve) => {
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.includes('"collection opened"')) resolve((JSON.parse(line) as { ms: number }).ms);
      }
    });
  });
  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/ready`)).status === 200) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, url, openMs, readyMs: performance.now() - t0 };
}

const rssMb = (pid: number, field: 'VmRSS' | 'VmHWM'): number =>
  Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

async function post(url: string, body: string): Promise<any> {
  for (let attempt = 0; ; attempt++) {
    const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const json = await r.json();
    if (r.status === 200) return json;
    // A shared machine can still shed a request (503/429): back off and retry, a few times.
    if ((r.status === 503 || r.status === 429) && attempt < 5) {
      await new Promise((res) => setTimeout(res, 1000 * (attempt + 1)));
      continue;
    }
    throw new Error(`${url}: ${r.status} ${JSON.stringify(json)}`);
  }
}

const vecJson = (v: Float32Array): string => `[${Array.from(v, (x) => x.toPrecision(7)).join(',')}]`;

function newestSnapshotSizes(colDir: string): { count: number; indexBytes: number; vectorBytes: number } | undefined {
  const snaps = readdirSync(colDir)
    .filter((f) => /^snapshot-\d{20}$/.test(f))
    .sort();
  const last = snaps[snaps.length - 1];
  if (!last) return undefined;
  const m = JSON.parse(readFileSync(join(colDir, last, 'manifest.json'), 'utf8')) as {
    doc_count: number;
    files: { index: { bytes: number }; vectors?: { bytes: number } };
  };
  return { count: m.doc_count, indexBytes: m.files.index.bytes, vectorBytes: m.files.vectors?.bytes ?? 0 };
}

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;

async function measureSearch(url: string, truth: Set<string>[], extra = ''): Promise<{ recall: number; p50: number; p99: number }> {
  const bodies = queries.map((q) => `{"collection":"scale","vector":${vecJson(q)},"k":${K},"include":[]${extra}}`);
  for (const b of bodies.slice(0, 20)) await post(`${url}/search`, b); // warm-up
  const times: number[] = [];
  let found = 0;
  for (let pass = 0; pass < 3; pass++) {
    for (let i = 0; i < Q; i++) {
      const t = performance.now();
      const res = (await post(`${url}/search`, bodies[i]!)) as { results: { id: string }[] };
      times.push(performance.now() - t);
      if (pass === 0) for (const h of res.results) if (truth[i]!.has(h.id)) found++;
    }
  }
  times.sort((a, b) => a - b);
  return { recall: found / (Q * K), p50: pct(times, 0.5), p99: pct(times, 0.99) };
}

const cpu = cpus()[0]?.model ?? 'unknown CPU';
console.log(
  `# scale benchmark: ${N.toLocaleString('en')} × ${DIMS}-d embedding-shaped vectors, ${Q} queries, k ${K}; ${cpu}, ${cpus().length} cores (shared)\n`,
);
console.log(
  '| config | docs | server RSS MB (peak) | recall@10 vs exact full width | search p50 / p99 ms (HTTP) | insert docs/s (segment) | graph B/vector | storage B/vector |',
);
console.log('|---|---|---|---|---|---|---|---|');

for (const config of values.configs!.split(',')) {
  const dataDir = mkdtempSync(join(tmpdir(), `scale-${config}-`));
  try {
    let server = await startServer(dataDir);
    const r = await fetch(`${server.url}/collections/scale`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(CONFIGS[config]),
    });
    if (r.status !== 200) throw new Error(`create: ${r.status} ${await r.text()}`);
    const truth = new Truth();
    const colDir = join(dataDir, 'collections', 'scale');
    let done = 0;
    let segStart = performance.now();
    let segDocs = 0;
    let insertSeconds = 0;
    const batches = Math.ceil(N / BATCH);
    let nextBatch = 0;
    for (const checkpoint of CHECKPOINTS) {
      const untilBatch = Math.ceil(checkpoint / BATCH);
      // IN_FLIGHT concurrent upserters share the server's group commit.
      const worker = async (): Promise<void> => {
        while (nextBatch < untilBatch && nextBatch < batches) {
          const b = nextBatch++;
          const vs = batchVectors(b);
          vs.forEach((v, j) => truth.add(v, b * BATCH + j));
          const body = `{"documents":[${vs.map((v, j) => `{"id":"v${b * BATCH + j}","vector":${vecJson(v)}}`).join(',')}]}`;
          await post(`${server.url}/collections/scale/documents`, body);
          done += vs.length;
          segDocs += vs.length;
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
      const segSeconds = (performance.now() - segStart) / 1000;
      insertSeconds += segSeconds;
      const rate = segDocs / segSeconds;
      const s = await measureSearch(server.url, truth.sets());
      const pid = server.child.pid!;
      const snap = newestSnapshotSizes(colDir);
      const perVec = snap
        ? `${(snap.indexBytes / snap.count).toFixed(0)} | ${snap.vectorBytes ? (snap.vectorBytes / snap.count).toFixed(0) : '—'}`
        : '— | —';
      let variants = '';
      if (config === 'funnel') {
        for (const rescore of [40, 200, 400]) {
          const v = await measureSearch(server.url, truth.sets(), `,"rescore":${rescore}`);
          variants += `; rescore ${rescore}: recall ${v.recall.toFixed(4)}, p50 ${v.p50.toFixed(2)} ms`;
        }
      }
      console.log(
        `| ${config} | ${done.toLocaleString('en')} | ${rssMb(pid, 'VmRSS').toFixed(0)} (${rssMb(pid, 'VmHWM').toFixed(0)}) | ${s.recall.toFixed(4)} | ${s.p50.toFixed(2)} / ${s.p99.toFixed(2)} | ${rate.toFixed(0)} | ${perVec} |`,
      );
      if (variants) console.log(`|   | (${config} at ${done.toLocaleString('en')}${variants}) | | | | | | |`);
      segStart = performance.now();
      segDocs = 0;
    }
    console.log(`| ${config} | overall insert rate | | | | ${(done / insertSeconds).toFixed(0)} | | |`);
    // Recovery after SIGKILL: the newest snapshot plus the log after it.
    server.child.kill('SIGKILL');
    await new Promise((res) => server.child.once('exit', res));
    server = await startServer(dataDir);
    const openMs = await server.openMs;
    const s = await measureSearch(server.url, truth.sets());
    console.log(
      `\n${config}: recovery after SIGKILL: collection open ${(openMs / 1000).toFixed(1)} s, process start to /ready ${(server.readyMs / 1000).toFixed(1)} s (model load included); RSS after recovery ${rssMb(server.child.pid!, 'VmRSS').toFixed(0)} MB; recall@10 after recovery ${s.recall.toFixed(4)}`,
    );
    server.child.kill('SIGTERM'); // graceful: final snapshot
    await new Promise((res) => server.child.once('exit', res));
    const snap = newestSnapshotSizes(colDir)!;
    const dirBytes = readdirSync(colDir).reduce((a, f) => {
      const p = join(colDir, f);
      const st = statSync(p);
      return a + (st.isDirectory() ? readdirSync(p).reduce((b, g) => b + statSync(join(p, g)).size, 0) : st.size);
    }, 0);
    console.log(
      `${config}: final snapshot: graph ${(snap.indexBytes / snap.count).toFixed(0)} B/vector, storage ${snap.vectorBytes ? (snap.vectorBytes / snap.count).toFixed(0) : '—'} B/vector; collection directory ${(dirBytes / 2 ** 20).toFixed(0)} MiB\n`,
    );
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}
