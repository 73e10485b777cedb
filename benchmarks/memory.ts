/**
 * Memory of the service as a user would measure it: start the built service with a model and
 * settings, send one request, and read the process's resident set and where it lies
 * (/proc/<pid>/smaps: the shared weights file, other files, anonymous memory), plus the weight
 * bytes per graph variant the service reports in /metrics. Optionally runs a mixed load
 * (sizes, layers, dimensions) and reports throughput and the resident set after it.
 *
 *   npm run bench:memory -- [--model minilm|default|DIR]... [--layer-exit on,off] [--quantize none,int8]
 *                           [--workers 2] [--load SECONDS] [--service NAME=path/to/dist/server/main.js]...
 *
 * Several --service entries (e.g. a build of an older commit) are measured in the same run,
 * interleaved, for a before/after ratio. Run under `flock /tmp/bench.lock`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureMiniLM, ROOT } from './lib.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', multiple: true },
    'layer-exit': { type: 'string', default: 'on,off' },
    quantize: { type: 'string', default: 'none' },
    workers: { type: 'string', default: '2' },
    load: { type: 'string', default: '0' },
    service: { type: 'string', multiple: true },
    env: { type: 'string', multiple: true },
  },
});

const models = (values.model ?? ['minilm', 'default']).map((m) =>
  m === 'minilm' ? ensureMiniLM() : m === 'default' ? join(ROOT, 'models/default') : m,
);
const services = (values.service ?? [`current=${join(ROOT, 'dist/server/main.js')}`]).map((s) => {
  const [name, file] = s.split('=') as [string, string];
  if (!fs.existsSync(file)) throw new Error(`${file} does not exist (run npm run build)`);
  return { name, file };
});
const extraEnv = Object.fromEntries((values.env ?? []).map((e) => e.split('=') as [string, string]));
const loadSeconds = Number(values.load);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function start(file: string, env: Record<string, string>): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, [file], {
    env: { ...process.env, LOG_LEVEL: 'warn', HOST: '127.0.0.1', PORT: String(port), ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 300_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/ready`)).status === 200) return { url, child };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('service did not become ready');
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface Breakdown {
  rss: number;
  anon: number;
  weights: number;
  otherFiles: number;
}

/** Resident MiB of the process: anonymous, the model's weight/graph files, other files (code, libraries). */
function breakdown(pid: number): Breakdown {
  const smaps = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n');
  const out = { rss: 0, anon: 0, weights: 0, otherFiles: 0 };
  let file = '';
  for (const line of smaps) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      file = head[1] ?? '';
      continue;
    }
    const m = /^Rss:\s+(\d+) kB/.exec(line);
    if (!m) continue;
    const kb = Number(m[1]);
    out.rss += kb;
    if (!file.startsWith('/')) out.anon += kb;
    else if (/\.(bin|onnx|data)$/.test(file)) out.weights += kb;
    else out.otherFiles += kb;
  }
  const mib = (kb: number): number => Math.round(kb / 1024);
  return { rss: mib(out.rss), anon: mib(out.anon), weights: mib(out.weights), otherFiles: mib(out.otherFiles) };
}

async function metric(url: string, prefix: string): Promise<string[]> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(prefix));
}

const TEXT = 'the quick brown fox jumps over the lazy dog while the service embeds every word of it';

async function post(url: string, body: unknown): Promise<number> {
  const r = await fetch(`${url}/embed`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  await r.arrayBuffer();
  return r.status;
}

/** Mixed load: 8 clients, batches of 1–32 inputs of 4–120 words, random layer and dimensions. */
async function mixedLoad(url: string, seconds: number, layers: number[], dims: number[]): Promise<{ inputsPerS: number; errors: number }> {
  let inputs = 0;
  let errors = 0;
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const words = TEXT.split(' ');
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (performance.now() < end) {
        const n = 1 + rand(32);
        const batch = Array.from({ length: n }, () =>
          Array.from({ length: 4 + rand(116) }, (_, i) => words[(i + rand(7)) % words.length]).join(' '),
        );
        const body: Record<string, unknown> = { inputs: batch };
        if (layers.length && rand(2)) body.layer = layers[rand(layers.length)];
        if (rand(2)) body.dimensions = dims[rand(dims.length)];
        const status = await post(url, body);
        if (status === 200) inputs += n;
        else errors++;
      }
    }),
  );
  return { inputsPerS: inputs / ((performance.now() - t0) / 1000), errors };
}

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
console.log(`CPU: ${cpu}, ${os.availableParallelism()} cores; workers ${values.workers}; figures in MiB`);
const rows: string[] = [];
for (const modelDir of models) {
  const onnx = ['model.onnx', 'onnx/model.onnx'].map((f) => join(modelDir, f)).find((f) => fs.existsSync(f))!;
  const fileMiB = Math.round(fs.statSync(onnx).size / 2 ** 20);
  for (const quantize of values.quantize!.split(',')) {
    for (const layerExit of values['layer-exit']!.split(',')) {
      for (const svc of services) {
        const env = { MODEL_DIR: modelDir, LAYER_EXIT: layerExit, QUANTIZE: quantize, WORKERS: values.workers!, ...extraEnv };
        const { url, child } = await start(svc.file, env);
        try {
          const info = (await (await fetch(`${url}/info`)).json()) as {
            layers?: number;
            dimensions?: number;
            model?: { numLayers?: number };
          };
          await post(url, { inputs: [TEXT] });
          await new Promise((r) => setTimeout(r, 500));
          const after = breakdown(child.pid!);
          const weights = (await metric(url, 'embed_model_weight')).map((l) => l.replace('embed_model_weight_', '')).join('; ');
          let load = '';
          if (loadSeconds > 0) {
            const numLayers = info.layers ?? info.model?.numLayers ?? 0;
            const layers = layerExit === 'on' && numLayers > 1 ? [1, Math.ceil(numLayers / 2), numLayers] : [];
            const dim = info.dimensions ?? 384;
            const r = await mixedLoad(url, loadSeconds, layers, [dim, Math.floor(dim / 2), Math.floor(dim / 4)]);
            const loaded = breakdown(child.pid!);
            load = ` | ${r.inputsPerS.toFixed(1)} inputs/s (${r.errors} errors) | RSS after ${loadSeconds}s load ${loaded.rss} (anon ${loaded.anon}, weights ${loaded.weights})`;
          }
          const row = `| ${svc.name} | ${modelDir.split('/').pop()} (${fileMiB} MiB) | ${quantize === 'int8' ? 'int8' : 'fp32'} | ${layerExit} | ${after.rss} | ${after.anon} | ${after.weights} | ${after.otherFiles}${load} |`;
          rows.push(row);
          console.log(row);
          if (weights) console.log(`    /metrics: ${weights}`);
        } finally {
          child.kill('SIGTERM');
          await new Promise((r) => child.once('exit', r));
        }
      }
    }
  }
}
console.log(
  '\n| service | model | precision | LAYER_EXIT | RSS | anon | weight files | other files |' +
    (loadSeconds > 0 ? ' mixed load | after load |' : ''),
);
console.log(`|---|---|---|---|---|---|---|---|${loadSeconds > 0 ? '---|---|' : ''}`);
for (const r of rows) console.log(r);
