/**
 * int8 vs fp32, and layer exit, on the MiniLM-shaped model.
 *
 *   npx tsx benchmarks/quantize.ts [--model models/minilm-shaped/onnx/model.onnx] [--seconds 6] [--calls 15] [--quality-only]
 *
 * --quality-only prints just the agreement columns: for a run under an emulated CPU, e.g.
 *   qemu-x86_64 -cpu EPYC-Rome "$(which node)" --import tsx benchmarks/quantize.ts --quality-only
 * which shows what an AVX2-only x86 CPU's int8 kernels compute (speed under emulation means nothing).
 *
 * 32-token inputs, intraOpNumThreads 2. Throughput is sequences/s from the median call time, with
 * the configurations measured round-robin (one call each per cycle), so load from neighbours on
 * a shared machine falls on all of them alike. Prints a markdown table.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { cpuFeatures, describeCpu } from '../src/runtime/cpu.js';
import { graphInputs, padFeeds } from '../src/runtime/feeds.js';
import { ensureStages } from '../src/runtime/onnx/cache.js';
import { loadModel, saveModel } from '../src/runtime/onnx/model.js';
import { PROBE_SENTENCES, tokenize } from '../src/runtime/onnx/probe.js';
import { agreement, DEFAULT_WEIGHT_FORMAT, quantizeModel, type WeightFormat } from '../src/runtime/onnx/quantize.js';
import { StagedRunner, withoutSpinning } from '../src/runtime/onnx/staged.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const MODEL = path.resolve(arg('model', 'models/minilm-shaped/onnx/model.onnx'));
/** Per configuration: at least this many calls and this much measured time. */
const SECONDS = Number(arg('seconds', '6'));
const CALLS = Number(arg('calls', '15'));
const THREADS = 2;
const SEQ = 32;
const BATCHES = [1, 64];

if (!fs.existsSync(MODEL)) {
  console.error(`${MODEL} not found: generate it with npm run model:minilm (tools/make_test_models.py --minilm)`);
  process.exit(1);
}
const modelDir = path.dirname(MODEL).endsWith('onnx') ? path.dirname(path.dirname(MODEL)) : path.dirname(MODEL);
const tokenizerPath = path.join(modelDir, 'tokenizer.json');

const sessionOptions: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: THREADS,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  executionMode: 'sequential',
  logSeverityLevel: 3,
};

const log = (msg: string): void => void process.stderr.write(`${msg}\n`);
const loadAtStart = os.loadavg();

// --- models -------------------------------------------------------------------------------------
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-quantize-'));
const fp32 = loadModel(MODEL);
const variants: { name: string; file: string; quantizeMs: number }[] = [{ name: 'fp32', file: MODEL, quantizeMs: 0 }];
// Per-tensor vs per-channel scales, and the three weight formats (quantize.ts: WeightFormat).
const configs: { name: string; perChannel: boolean; weightFormat: WeightFormat }[] = [
  { name: 'int8 per-tensor s8', perChannel: false, weightFormat: 's8' },
  { name: 'int8 per-channel s8', perChannel: true, weightFormat: 's8' },
  { name: 'int8 per-channel u8', perChannel: true, weightFormat: 'u8' },
  { name: 'int8 per-channel s8-reduced', perChannel: true, weightFormat: 's8-reduced' },
];
for (const c of configs) {
  const t = performance.now();
  const { model } = quantizeModel(fp32, c);
  const quantizeMs = performance.now() - t;
  const file = path.join(work, `model_${c.name.replaceAll(' ', '_')}.onnx`);
  saveModel(model, file);
  variants.push({ name: c.name, file, quantizeMs });
}
/** The variant the service serves (DEFAULT_WEIGHT_FORMAT, per-channel), used for the layer-exit rows. */
const servedName = `int8 per-channel ${DEFAULT_WEIGHT_FORMAT}`;

async function timedCreate(file: string): Promise<{ session: ort.InferenceSession; ms: number }> {
  const t = performance.now();
  const session = await ort.InferenceSession.create(file, sessionOptions);
  return { session, ms: performance.now() - t };
}

const sessions = new Map<string, ort.InferenceSession>();
const createMs = new Map<string, number>();
for (const v of variants) {
  // Best of two creations (the first also warms the page cache).
  const a = await timedCreate(v.file);
  await a.session.release();
  const b = await timedCreate(v.file);
  sessions.set(v.name, b.session);
  createMs.set(v.name, Math.min(a.ms, b.ms));
}

// --- inputs -------------------------------------------------------------------------------------
// 32-token rows: six consecutive probe sentences, truncated to 32 tokens.
const texts = Array.from({ length: 64 }, (_, i) =>
  [0, 1, 2, 3, 4, 5].map((j) => PROBE_SENTENCES[(i + j) % PROBE_SENTENCES.length]).join(' '),
);
const ids = (await tokenize(tokenizerPath, texts, SEQ)).map((r) => r.slice(0, SEQ));
if (ids.some((r) => r.length !== SEQ)) throw new Error('probe rows shorter than 32 tokens');
const inputs = graphInputs(sessions.get('fp32')!);
const feedsFor = (batch: number): Record<string, ort.Tensor> => padFeeds(ids.slice(0, batch), inputs, { padTo: SEQ }).feeds;

// Agreement on the probe sentences (natural lengths, padded batch): mean and worst sentence.
const probeFeeds = padFeeds(await tokenize(tokenizerPath, PROBE_SENTENCES, 128), inputs).feeds;
const quality = new Map<string, { mean: number; min: number }>();
for (const v of variants.slice(1)) quality.set(v.name, await agreement(sessions.get('fp32')!, sessions.get(v.name)!, probeFeeds));

if (process.argv.includes('--quality-only')) {
  console.log(
    `CPU: ${describeCpu(cpuFeatures())}${process.env.QEMU_CPU ? ` under qemu -cpu ${process.env.QEMU_CPU}` : ''}; model ${path.relative(process.cwd(), MODEL)}\n`,
  );
  console.log(`| model | cosine vs fp32, mean / worst (${PROBE_SENTENCES.length} sentences, mean-pooled) |`);
  console.log('|---|---:|');
  for (const [name, q] of quality) console.log(`| ${name} | ${q.mean.toFixed(5)} / ${q.min.toFixed(5)} |`);
  for (const s of sessions.values()) await s.release();
  fs.rmSync(work, { recursive: true, force: true });
  process.exit(0);
}

// --- throughput ---------------------------------------------------------------------------------
type Run = () => Promise<unknown>;
interface Config {
  key: string;
  run: Run;
  batch: number;
}

/**
 * Round-robin: one call per configuration per cycle, until every configuration has at least
 * `CALLS` calls and `SECONDS` of measured time. Throughput = batch / median call time, so a
 * neighbour's burst of CPU use lands on every configuration alike and outliers do not count.
 */
async function roundRobin(configs: Config[]): Promise<Map<string, number>> {
  const times = new Map<string, number[]>(configs.map((c) => [c.key, []]));
  const spent = new Map<string, number>(configs.map((c) => [c.key, 0]));
  for (const c of configs) await c.run(); // warm-up
  let cycle = 0;
  for (;;) {
    const pending = configs.filter((c) => times.get(c.key)!.length < CALLS || spent.get(c.key)! < SECONDS * 1000);
    if (pending.length === 0) break;
    for (const c of pending) {
      const t = performance.now();
      await c.run();
      const dt = performance.now() - t;
      times.get(c.key)!.push(dt);
      spent.set(c.key, spent.get(c.key)! + dt);
    }
    if (++cycle % 10 === 0) log(`cycle ${cycle}: ${pending.length} configurations still measuring`);
  }
  const out = new Map<string, number>();
  for (const c of configs) {
    const v = [...times.get(c.key)!].sort((a, b) => a - b);
    const median = v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
    out.set(c.key, (c.batch * 1000) / median);
  }
  return out;
}

const raw = await roundRobin(
  variants.flatMap((v) =>
    BATCHES.map((batch) => {
      const feeds = feedsFor(batch);
      const s = sessions.get(v.name)!;
      return { key: `${v.name}|${batch}`, batch, run: () => s.run(feeds) };
    }),
  ),
);

// --- layer exit ---------------------------------------------------------------------------------
const exitBatch = 64;
const exitFeeds = feedsFor(exitBatch);
const stageCache = path.join(work, 'stages');
const fp32Runner = await StagedRunner.create((await ensureStages(MODEL, stageCache)).dir, sessionOptions);
const int8File = variants.find((v) => v.name === servedName)!.file;
const int8Runner = await StagedRunner.create((await ensureStages(int8File, stageCache)).dir, sessionOptions);
const L = fp32Runner.numLayers;
// The unsplit graphs again, with the stage sessions' threading (no spinning), for a like-for-like row.
const unsplitFp32 = await ort.InferenceSession.create(MODEL, withoutSpinning(sessionOptions));
const unsplitInt8 = await ort.InferenceSession.create(int8File, withoutSpinning(sessionOptions));
const exitConfigs: Config[] = [];
for (const [name, runner, unsplit] of [
  ['fp32', fp32Runner, unsplitFp32],
  ['int8', int8Runner, unsplitInt8],
] as const) {
  for (let k = 1; k <= L; k++)
    exitConfigs.push({ key: `${name}|${k}`, batch: exitBatch, run: () => runner.run(exitFeeds, { exitLayer: k }) });
  exitConfigs.push({ key: `${name}|unsplit`, batch: exitBatch, run: () => unsplit.run(exitFeeds) });
}
const exits = await roundRobin(exitConfigs);

// --- report -------------------------------------------------------------------------------------
const mb = (file: string): string => (fs.statSync(file).size / 1e6).toFixed(1);
const fmt = (v: number | undefined): string => (v === undefined ? '–' : v.toFixed(0));
const lines: string[] = [];
lines.push(
  `### int8 vs fp32 (${path.relative(process.cwd(), MODEL)}, ${SEQ}-token inputs, intraOpNumThreads ${THREADS}, median call, round-robin, ≥ ${CALLS} calls and ≥ ${SECONDS}s each)`,
);
lines.push('');
lines.push(`CPU: ${describeCpu(cpuFeatures())}`);
lines.push('');
lines.push(
  `| model | file MB | session create ms | batch 1 seq/s | batch 64 seq/s | × fp32 (b64) | cosine vs fp32, mean / worst (${PROBE_SENTENCES.length} sentences, mean-pooled) |`,
);
lines.push('|---|---:|---:|---:|---:|---:|---:|');
const fp64 = raw.get('fp32|64')!;
for (const v of variants) {
  const b64 = raw.get(`${v.name}|64`)!;
  lines.push(
    `| ${v.name} | ${mb(v.file)} | ${fmt(createMs.get(v.name))} | ${fmt(raw.get(`${v.name}|1`))} | ${fmt(b64)} | ${(b64 / fp64).toFixed(2)} | ${v.name === 'fp32' ? '1' : `${quality.get(v.name)!.mean.toFixed(5)} / ${quality.get(v.name)!.min.toFixed(5)}`} |`,
  );
}
lines.push('');
lines.push(`### Layer exit via StagedRunner (batch ${exitBatch}, ${SEQ} tokens; ratio = throughput at k / throughput at full depth ${L})`);
lines.push('');
lines.push(`| exit layer | fp32 seq/s | fp32 ratio | ${servedName} seq/s | int8 ratio |`);
lines.push('|---:|---:|---:|---:|---:|');
for (let k = 1; k <= L; k++) {
  const f = exits.get(`fp32|${k}`)!;
  const q = exits.get(`int8|${k}`)!;
  lines.push(
    `| ${k} | ${fmt(f)} | ${(f / exits.get(`fp32|${L}`)!).toFixed(2)} | ${fmt(q)} | ${(q / exits.get(`int8|${L}`)!).toFixed(2)} |`,
  );
}
const uf = exits.get('fp32|unsplit')!;
const uq = exits.get('int8|unsplit')!;
lines.push(
  `| unsplit graph (same threading) | ${fmt(uf)} | ${(uf / exits.get(`fp32|${L}`)!).toFixed(2)} | ${fmt(uq)} | ${(uq / exits.get(`int8|${L}`)!).toFixed(2)} |`,
);
lines.push('');
lines.push(
  `Machine: ${os.cpus()[0]?.model ?? '?'} (${os.availableParallelism()} cores), onnxruntime-node ${ort.env.versions.common}, 1-minute load average ${loadAtStart[0]!.toFixed(1)} at start, ${os.loadavg()[0]!.toFixed(1)} at end.`,
);
console.log(lines.join('\n'));

await unsplitFp32.release();
await unsplitInt8.release();
await fp32Runner.release();
await int8Runner.release();
for (const s of sessions.values()) await s.release();
fs.rmSync(work, { recursive: true, force: true });
