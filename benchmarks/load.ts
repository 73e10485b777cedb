/**
 * Load benchmark (issue: worker pool and dynamic batching). In one run, on the MiniLM-L6-shaped model:
 *  1. raw ONNX Runtime at batch 1 and at batch 64 (the limit), same token length, same threads;
 *  2. the service under 64 connections of single-sentence /embed requests, batching on;
 *  3. the same with batching off (MAX_BATCH_SIZE=1);
 *  4. an overload run: far more connections than capacity, reporting the 429 rate, peak RSS, and
 *     checking every 200 body against the vector computed alone beforehand.
 * /health latency is sampled throughout run 2. Usage: npm run bench:load [-- --seconds 20 --tokens 32]
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { ensureMiniLM, fmt, rawLimit, rawThroughput, type Service, sentencesOfLength, startService } from './lib.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '20' },
    tokens: { type: 'string', default: '32' },
    connections: { type: 'string', default: '64' },
    overload: { type: 'string', default: '1024' },
    port: { type: 'string', default: '18181' },
    env: { type: 'string', multiple: true, default: [] },
  },
});
const seconds = Number(values.seconds);
const tokens = Number(values.tokens);
const connections = Number(values.connections);
const extraEnv = Object.fromEntries(values.env!.map((kv) => kv.split('=') as [string, string]));

const modelDir = ensureMiniLM();
const onnx = join(modelDir, 'onnx/model.onnx');
const sentences = await sentencesOfLength(modelDir, tokens, 64);

console.log(`# Load benchmark: MiniLM-L6-shaped fp32, ${tokens} tokens/input, ${seconds}s per run\n`);
const raw1 = await rawThroughput(onnx, { batch: 1, tokens, seconds: Math.min(seconds, 10), threads: 2 });
const raw = await rawLimit(onnx, { batch: 64, tokens, seconds: Math.min(seconds, 10), cores: 2 });
const raw64 = raw.limit;
console.log(
  `raw ORT batch 1 (2 threads): ${fmt(raw1)} seq/s; batch 64: 1 session × 2 threads ${fmt(raw.single)} seq/s, 2 sessions × 1 thread ${fmt(raw.parallel)} seq/s; limit ${fmt(raw64)} seq/s`,
);

interface Run {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  total: number;
  status429: number;
  mismatches: number;
  healthMaxMs?: number;
  healthP99Ms?: number;
  peakRssMb?: number;
}

async function drive(service: Service, name: string, conns: number, expected?: Map<string, string>): Promise<Run> {
  let mismatches = 0;
  let status429 = 0;
  // /health is probed from its own process, so the load generator's event loop does not skew it.
  const prober = spawn(process.execPath, ['-e', HEALTH_PROBE, `${service.url}/health`, String(seconds)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let probeOut = '';
  prober.stdout.on('data', (d: Buffer) => (probeOut += d.toString()));
  const probed = new Promise((r) => prober.once('exit', r));
  const result = await autocannon({
    url: `${service.url}/embed`,
    connections: conns,
    duration: seconds,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    requests: sentences.map((s) => ({
      body: JSON.stringify({ inputs: s }),
      onResponse: (status: number, body: string) => {
        if (status === 429) status429++;
        if (status === 200 && expected && body !== expected.get(s)) mismatches++;
      },
    })),
  });
  await probed;
  const health = JSON.parse(probeOut || '{"max": -1, "p99": -1}') as { max: number; p99: number };
  const total = result.requests.total;
  return {
    name,
    // Only answered work counts as throughput: refusals are cheap and would inflate it.
    rps: (total - result.non2xx) / (result.duration || seconds),
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    total,
    status429,
    mismatches,
    healthMaxMs: health.max,
    healthP99Ms: health.p99,
    peakRssMb: service.peakRssKb() / 1024,
  };
}

const HEALTH_PROBE = `
const [url, seconds] = process.argv.slice(1);
const times = [];
const end = Date.now() + Number(seconds) * 1000;
(async () => {
  while (Date.now() < end) {
    const t = performance.now();
    await fetch(url).then((r) => r.text());
    times.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 50));
  }
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({ max: times.at(-1), p99: times[Math.floor(times.length * 0.99)] }));
})();
`;

const runs: Run[] = [];
let port = Number(values.port);

const batched = await startService({ MODEL_DIR: modelDir, ...extraEnv }, port++);
const expected = new Map<string, string>();
for (const s of sentences) {
  const res = await fetch(`${batched.url}/embed`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: s }),
  });
  expected.set(s, await res.text());
}
runs.push(await drive(batched, 'one client, sequential requests (batch 1)', 1, expected));
runs.push(await drive(batched, `batching on, ${connections} connections`, connections, expected));
runs.push(await drive(batched, `overload, ${values.overload} connections`, Number(values.overload), expected));
await batched.stop();

const unbatched = await startService({ MODEL_DIR: modelDir, MAX_BATCH_SIZE: '1', ...extraEnv }, port++);
runs.push(await drive(unbatched, `batching off (max batch 1), ${connections} connections`, connections));
await unbatched.stop();

console.log(
  '\n| run | 200s/s | tokens/s | p50 ms | p99 ms | ratio to raw batch-64 | non-2xx | 429s | wrong bodies | /health p99 / max ms | peak RSS MB |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of runs) {
  console.log(
    `| ${r.name} | ${fmt(r.rps)} | ${fmt(r.rps * tokens, 0)} | ${r.p50} | ${r.p99} | ${fmt(r.rps / raw64, 2)} | ${r.non2xx} | ${r.status429} (${fmt((100 * r.status429) / Math.max(1, r.total), 0)}%) | ${r.mismatches} | ${fmt(r.healthP99Ms ?? 0)} / ${fmt(r.healthMaxMs ?? 0)} | ${fmt(r.peakRssMb ?? 0, 0)} |`,
  );
}
const single = runs[0]!;
const on = runs[1]!;
const off = runs[3]!;
console.log(
  `\nbatching on / raw batch-64 limit: ${fmt(on.rps / raw64, 2)}; batching on / batching off: ${fmt(on.rps / off.rps, 2)}; ` +
    `sequential single requests / raw batch 1: ${fmt(single.rps / raw1, 2)}; raw batch 64 / batch 1: ${fmt(raw64 / raw1, 2)}`,
);
