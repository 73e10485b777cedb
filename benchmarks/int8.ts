/**
 * int8 vs fp32 in one run, on the MiniLM-shaped model: raw ONNX Runtime at batch 64, then the
 * service under 64 connections of single-sentence /embed requests with QUANTIZE=none and =int8
 * (each with its defaults), model size and start-up time (to /ready, including quantization on
 * the first int8 start and the cached copy on the second).
 * Usage: npm run bench:int8 [-- --seconds 15 --tokens 32]
 */
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { cpuFeatures, describeCpu } from '../src/runtime/cpu.js';
import { int8PairsSaturate } from '../src/runtime/onnx/int8-kernel.js';
import { ensureMiniLM, fmt, rawThroughput, sentencesOfLength, startService } from './lib.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '15' },
    tokens: { type: 'string', default: '32' },
    connections: { type: 'string', default: '64' },
    port: { type: 'string', default: '18381' },
  },
});
const seconds = Number(values.seconds);
const tokens = Number(values.tokens);
const modelDir = ensureMiniLM();
const fp32Path = join(modelDir, 'onnx/model.onnx');
const sentences = await sentencesOfLength(modelDir, tokens, 64);
// Start from no cached int8 copy, so the first int8 start includes quantizing.
rmSync(join(modelDir, 'onnx/.int8'), { recursive: true, force: true });

async function serve(
  quantize: string,
  port: number,
): Promise<{ rps: number; p50: number; p99: number; startMs: number; agreement: number | null; precision: string }> {
  const t = performance.now();
  const s = await startService({ MODEL_DIR: modelDir, QUANTIZE: quantize }, port);
  const startMs = performance.now() - t;
  const info = (await (await fetch(`${s.url}/info`)).json()) as { precision: string; quantization: { agreement: number | null } };
  const result = await autocannon({
    url: `${s.url}/embed`,
    connections: Number(values.connections),
    duration: seconds,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    requests: sentences.map((x) => ({ body: JSON.stringify({ inputs: x }) })),
  });
  await s.stop();
  if (result.non2xx) throw new Error(`${result.non2xx} non-2xx answers (${quantize})`);
  return {
    rps: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    startMs,
    agreement: info.quantization.agreement,
    precision: info.precision,
  };
}

console.log(`# int8 vs fp32: MiniLM-L6-shaped, ${tokens} tokens/input, ${values.connections} connections, ${seconds}s per run\n`);
// int8's speed-up is a property of the CPU (VNNI/AMX vs AVX2-only x86 vs arm64): name it.
console.log(`CPU: ${describeCpu(cpuFeatures())}; int8 pair sums clip on this CPU's kernel: ${await int8PairsSaturate()}\n`);
let port = Number(values.port);
const fp32 = await serve('none', port++);
const int8 = await serve('int8', port++);
const int8Cached = await serve('int8', port++);
const int8Path = join(modelDir, 'onnx/.int8');
const cached = existsSync(int8Path) ? readdirSync(int8Path).map((k) => join(int8Path, k, 'model_quantized.onnx'))[0] : undefined;
const rawFp32 = await rawThroughput(fp32Path, { batch: 64, tokens, seconds: 8, threads: 2 });
const rawInt8 = cached ? await rawThroughput(cached, { batch: 64, tokens, seconds: 8, threads: 2 }) : NaN;

console.log('| graph | file MB | start to /ready ms | raw ORT batch 64 seq/s | service req/s | p50 ms | p99 ms | agreement with fp32 |');
console.log('|---|---|---|---|---|---|---|---|');
console.log(
  `| fp32 | ${fmt(statSync(fp32Path).size / 1e6)} | ${fmt(fp32.startMs, 0)} | ${fmt(rawFp32)} | ${fmt(fp32.rps)} | ${fp32.p50} | ${fp32.p99} | 1 |`,
);
console.log(
  `| int8 (first start: quantizes) | ${cached ? fmt(statSync(cached).size / 1e6) : '?'} | ${fmt(int8.startMs, 0)} | ${fmt(rawInt8)} | ${fmt(int8.rps)} | ${int8.p50} | ${int8.p99} | ${int8.agreement?.toFixed(5)} |`,
);
console.log(
  `| int8 (cached) | | ${fmt(int8Cached.startMs, 0)} | | ${fmt(int8Cached.rps)} | ${int8Cached.p50} | ${int8Cached.p99} | ${int8Cached.agreement?.toFixed(5)} |`,
);
const rawRatio = rawInt8 / rawFp32;
console.log(`\nraw ONNX Runtime int8 / fp32 (what this CPU allows): ${fmt(rawRatio, 2)}`);
console.log(
  `service int8 / fp32: ${fmt(int8.rps / fp32.rps, 2)} (cached start: ${fmt(int8Cached.rps / fp32.rps, 2)}), i.e. ${fmt(int8.rps / fp32.rps / rawRatio, 2)} of the raw ratio`,
);
