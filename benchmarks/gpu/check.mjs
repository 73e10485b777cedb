#!/usr/bin/env node
/**
 * GPU device check: which execution providers onnxruntime-node can create here, and how raw ORT
 * and the service's engine perform on the best one and on the CPU. Plain ESM JavaScript so that a
 * bare Node binary runs it from the packed bundle (benchmarks/gpu/pack.sh) with no build step.
 *
 *   node check.mjs --model DIR [--out report.json] [--seconds 3] [--budget 300]
 *                  [--engine dist/runtime/engine.js] [--ort onnxruntime-node]
 *
 * Every measurement runs in a child process (this file, `--phase ...`), so that a native crash or
 * a hang in one provider costs that phase only: the parent records the failure, kills the child
 * at its time limit, and rewrites the report after each phase (a run cut short still leaves one).
 *
 * Phases: probe each provider (create a session, run batch 1, record `ok` or the exact error and
 * the native log lines ORT printed), pick the best (first of --providers that worked, else cpu),
 * then raw ORT on the best provider, the engine on the best provider (one worker, all cores as
 * intra-op threads, CPU as fallback), raw ORT on the CPU, the engine on the CPU (default
 * threading), and finally the cosine between best-provider and CPU embeddings.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const RESULT_MARK = '@@RESULT ';

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

function parseArgs(argv) {
  const o = {
    model: null,
    onnx: null,
    out: resolve('gpu-report.json'),
    seconds: 3,
    warmup: 2,
    batches: [1, 16, 64],
    seq: 32,
    providers: ['webgpu', 'cuda'],
    budget: 300,
    probeTimeout: 90,
    engine: null,
    ort: 'onnxruntime-node',
    threads: os.availableParallelism(),
    cpuWorkers: Math.max(1, Math.min(os.availableParallelism(), 4)),
    nvidiaSmi: null,
    phase: null,
    phaseArg: null,
    quiet: false,
  };
  const take = (i) => {
    if (i + 1 >= argv.length) throw new Error(`${argv[i]} needs a value`);
    return argv[i + 1];
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--model':
        o.model = resolve(take(i));
        i++;
        break;
      case '--onnx':
        o.onnx = resolve(take(i));
        i++;
        break;
      case '--out':
        o.out = resolve(take(i));
        i++;
        break;
      case '--seconds':
        o.seconds = Number(take(i));
        i++;
        break;
      case '--warmup':
        o.warmup = Number(take(i));
        i++;
        break;
      case '--batches':
        o.batches = take(i).split(',').map(Number);
        i++;
        break;
      case '--seq':
        o.seq = Number(take(i));
        i++;
        break;
      case '--providers':
        o.providers = take(i).split(',').filter(Boolean);
        i++;
        break;
      case '--budget':
        o.budget = Number(take(i));
        i++;
        break;
      case '--probe-timeout':
        o.probeTimeout = Number(take(i));
        i++;
        break;
      case '--engine':
        o.engine = resolve(take(i));
        i++;
        break;
      case '--ort':
        o.ort = take(i);
        i++;
        break;
      case '--threads':
        o.threads = Number(take(i));
        i++;
        break;
      case '--cpu-workers':
        o.cpuWorkers = Number(take(i));
        i++;
        break;
      case '--nvidia-smi':
        o.nvidiaSmi = take(i);
        i++;
        break;
      case '--phase':
        o.phase = take(i);
        i++;
        break;
      case '--phase-arg':
        o.phaseArg = take(i);
        i++;
        break;
      case '--quiet':
        o.quiet = true;
        break;
      case '-h':
      case '--help':
        console.log(
          readFileSync(fileURLToPath(import.meta.url), 'utf8')
            .split('\n')
            .slice(1, 19)
            .join('\n'),
        );
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${a}`);
    }
  }
  if (!o.model) throw new Error('--model DIR is required');
  for (const [k, v] of Object.entries({ seconds: o.seconds, warmup: o.warmup, seq: o.seq, budget: o.budget, threads: o.threads })) {
    if (!Number.isFinite(v) || v < 0) throw new Error(`--${k} must be a non-negative number`);
  }
  if (o.batches.some((b) => !Number.isInteger(b) || b < 1)) throw new Error('--batches must be positive integers');
  o.onnx ??= findOnnx(o.model);
  o.engine ??= findEngine();
  return o;
}

function findOnnx(dir) {
  for (const p of [join(dir, 'model.onnx'), join(dir, 'onnx', 'model.onnx')]) if (existsSync(p)) return p;
  throw new Error(`no model.onnx in ${dir} or ${join(dir, 'onnx')}`);
}

/** The compiled engine: beside this file in the bundle, or the repository's dist/. */
function findEngine() {
  const candidates = [join(HERE, 'dist/runtime/engine.js'), join(HERE, '../../dist/runtime/engine.js')];
  for (const p of candidates) if (existsSync(p)) return p;
  throw new Error(`no compiled engine at ${candidates.join(' or ')}: run npm run build, or pass --engine`);
}

function readJsonMaybe(path) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Child phases
// ---------------------------------------------------------------------------------------------

async function loadOrt(spec) {
  const mod = await import(spec.startsWith('.') || spec.startsWith('/') ? pathToFileURL(resolve(spec)).href : spec);
  return mod.default ?? mod;
}

function sessionOptions(provider, threads) {
  return {
    executionProviders: [provider],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    logSeverityLevel: 3,
  };
}

/** A module of the service compiled beside the engine (dist/ in the bundle, src/ under tsx): its cosine. */
function serviceModule(o, rel) {
  return import(pathToFileURL(join(dirname(o.engine), rel + extname(o.engine))).href);
}

/**
 * Feeds for `batch` rows of `seq` tokens, typed as the graph declares them. Built here rather than
 * by the service's feed builder (src/runtime/feeds.ts) on purpose: the raw ORT phases must not
 * depend on the service's compiled code, so a missing or broken engine still leaves the raw figures
 * (tests/gpu-check.test.ts checks that). The rules are the same: ids, a mask of ones, positions
 * 0..seq-1, zeros for token types, int32 where the graph says int32.
 */
function makeFeeds(ort, session, batch, seq, vocab) {
  const types = new Map();
  for (const m of session.inputMetadata ?? []) if (m.isTensor) types.set(m.name, m.type);
  const n = batch * seq;
  const feeds = {};
  for (const name of session.inputNames) {
    const values = new BigInt64Array(n);
    for (let b = 0; b < batch; b++) {
      for (let t = 0; t < seq; t++) {
        const i = b * seq + t;
        if (name === 'input_ids') values[i] = BigInt(t === 0 ? Math.min(101, vocab - 1) : 5 + ((b * 7919 + t * 104729) % (vocab - 5)));
        else if (name === 'attention_mask') values[i] = 1n;
        else if (name === 'position_ids') values[i] = BigInt(t);
        // token_type_ids and anything else: zeros
      }
    }
    feeds[name] =
      types.get(name) === 'int32'
        ? new ort.Tensor('int32', Int32Array.from(values, Number), [batch, seq])
        : new ort.Tensor('int64', values, [batch, seq]);
  }
  return feeds;
}

function stats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return {
    meanMs: +(ms.reduce((a, b) => a + b, 0) / ms.length).toFixed(3),
    p50Ms: +q(0.5).toFixed(3),
    p90Ms: +q(0.9).toFixed(3),
    minMs: +s[0].toFixed(3),
  };
}

function modelShape(o) {
  const cfg = readJsonMaybe(join(o.model, 'config.json')) ?? {};
  return {
    vocab: Number(cfg.vocab_size) || 1000,
    maxPositions: Number(cfg.max_position_embeddings) || 512,
    hidden: cfg.hidden_size ?? null,
    layers: cfg.num_hidden_layers ?? null,
  };
}

/** Creates a session on one provider and runs batch 1 once. */
async function phaseProbe(o, provider) {
  const ort = await loadOrt(o.ort);
  const shape = modelShape(o);
  const t0 = performance.now();
  let session;
  try {
    session = await ort.InferenceSession.create(o.onnx, sessionOptions(provider, o.threads));
  } catch (err) {
    return { ok: false, stage: 'create', error: String(err?.message ?? err), createMs: +(performance.now() - t0).toFixed(1) };
  }
  const createMs = performance.now() - t0;
  try {
    const feeds = makeFeeds(ort, session, 1, Math.min(o.seq, shape.maxPositions), shape.vocab);
    const t1 = performance.now();
    const out = await session.run(feeds);
    const firstRunMs = performance.now() - t1;
    const first = out[session.outputNames[0]];
    const data = first.data;
    let finite = true;
    for (let i = 0; i < Math.min(data.length, 4096); i++) if (!Number.isFinite(data[i])) finite = false;
    return {
      ok: finite,
      ...(finite ? {} : { stage: 'run', error: 'output has non-finite values' }),
      createMs: +createMs.toFixed(1),
      firstRunMs: +firstRunMs.toFixed(1),
      inputs: session.inputNames,
      outputs: session.outputNames,
      outputDims: first.dims,
    };
  } catch (err) {
    return { ok: false, stage: 'run', error: String(err?.message ?? err), createMs: +createMs.toFixed(1) };
  } finally {
    await session.release?.();
  }
}

/** Raw ORT throughput at each batch size: warm-up runs, then as many runs as fit in --seconds. */
async function phaseRaw(o, provider) {
  const ort = await loadOrt(o.ort);
  const shape = modelShape(o);
  const seq = Math.min(o.seq, shape.maxPositions);
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(o.onnx, sessionOptions(provider, o.threads));
  const createMs = performance.now() - t0;
  const byBatch = {};
  for (const batch of o.batches) {
    const feeds = makeFeeds(ort, session, batch, seq, shape.vocab);
    const w0 = performance.now();
    await session.run(feeds);
    const firstRunMs = performance.now() - w0;
    for (let i = 1; i < o.warmup; i++) await session.run(feeds);
    const times = [];
    const start = performance.now();
    do {
      const r0 = performance.now();
      const out = await session.run(feeds);
      times.push(performance.now() - r0);
      for (const t of Object.values(out)) t.dispose?.();
    } while (performance.now() - start < o.seconds * 1000 || times.length < 2);
    const elapsed = performance.now() - start;
    byBatch[batch] = {
      runs: times.length,
      seqPerSec: +((times.length * batch * 1000) / elapsed).toFixed(2),
      tokensPerSec: Math.round((times.length * batch * seq * 1000) / elapsed),
      firstRunMs: +firstRunMs.toFixed(1),
      ...stats(times),
    };
    log(o, `raw ${provider} batch ${batch}: ${byBatch[batch].seqPerSec} seq/s (${times.length} runs, p50 ${byBatch[batch].p50Ms} ms)`);
  }
  await session.release?.();
  return { provider, seq, threads: o.threads, createMs: +createMs.toFixed(1), byBatch };
}

const WORDS = (
  'the of and to in is it you that he was for on are with as his they be at one have this from or had by hot but some ' +
  'what there we can out other were all your when up use word how said each she which do their time if will way about ' +
  'many then them would write like so these her long make thing see him two has look more day could go come did my sound'
).split(' ');

/** `n` distinct texts of `words` common words (one WordPiece token each in the test vocabularies). */
function texts(n, words, salt = 0) {
  return Array.from({ length: n }, (_, i) =>
    Array.from({ length: words }, (_, w) => WORDS[(i * 13 + w * 7 + salt * 31 + ((w * w) % 11)) % WORDS.length]).join(' '),
  );
}

const COSINE_SENTENCES = [
  'The quick brown fox jumps over the lazy dog.',
  'What is the capital of France?',
  'Machine learning models turn text into vectors for semantic search.',
  "I don't think it's going to rain today, but take an umbrella just in case!",
  'Numbers like 42, 3.14 and 2024 are split into pieces.',
  'In the early morning the small village was quiet, and the people walked slowly to the market.',
  'When the search service receives a batch of requests, it splits every document into tokens.',
  'hello',
];

/** The service's engine: load, warm up (which probes the batch token budget), throughput, vectors. */
async function phaseEngine(o, which) {
  const { Engine } = await import(pathToFileURL(o.engine).href);
  const logs = [];
  const options =
    which === 'cpu'
      ? { modelDir: o.model, executionProviders: ['cpu'], workers: o.cpuWorkers }
      : { modelDir: o.model, executionProviders: [o.phaseArg, 'cpu'], workers: 1, intraOpThreads: o.threads };
  if (o.onnx) options.onnxFile = o.onnx;
  const t0 = performance.now();
  const engine = await Engine.load({ ...options, log: (level, msg) => logs.push(`${level}: ${msg}`) });
  const loadMs = performance.now() - t0;
  try {
    const w0 = performance.now();
    await engine.warmUp();
    const warmUpMs = performance.now() - w0;
    const info = engine.info;
    const concurrency = Math.max(2, info.workers);
    const words = Math.max(1, o.seq - 2);
    const byBatch = {};
    for (const batch of o.batches) {
      const pool = Array.from({ length: concurrency }, (_, c) => texts(batch, words, c));
      // Warm-up at this shape (first calls pay for new shapes on GPU providers).
      const first0 = performance.now();
      await engine.embed(pool[0], {});
      const firstMs = performance.now() - first0;
      for (let i = 1; i < o.warmup; i++) await engine.embed(pool[i % concurrency], {});
      const latencies = [];
      let tokens = 0;
      const start = performance.now();
      const deadline = start + o.seconds * 1000;
      await Promise.all(
        pool.map(async (batchTexts) => {
          do {
            const r0 = performance.now();
            const r = await engine.embed(batchTexts, {});
            latencies.push(performance.now() - r0);
            tokens += r.totalTokens;
          } while (performance.now() < deadline || latencies.length < 2);
        }),
      );
      const elapsed = performance.now() - start;
      byBatch[batch] = {
        calls: latencies.length,
        seqPerSec: +((latencies.length * batch * 1000) / elapsed).toFixed(2),
        tokensPerSec: Math.round((tokens * 1000) / elapsed),
        tokensPerText: +(tokens / (latencies.length * batch)).toFixed(1),
        firstCallMs: +firstMs.toFixed(1),
        ...stats(latencies),
      };
      log(
        o,
        `engine ${which} (${info.provider}) batch ${batch}: ${byBatch[batch].seqPerSec} seq/s (${latencies.length} calls × ${concurrency} in flight)`,
      );
    }
    const r = await engine.embed(COSINE_SENTENCES, {});
    return {
      requested: options.executionProviders,
      provider: info.provider,
      workers: info.workers,
      intraOpThreads: info.intraOpThreads,
      concurrency,
      batchTokenBudget: info.limits.maxBatchTokens,
      limits: info.limits,
      inputNames: info.inputNames,
      pooledOutput: info.pooledOutput,
      model: {
        id: info.model.id,
        onnxPath: info.model.onnxPath,
        hiddenSize: info.model.hiddenSize,
        numLayers: info.model.numLayers,
        maxLength: info.model.maxLength,
        pooling: info.model.pooling,
      },
      loadMs: +loadMs.toFixed(1),
      warmUpMs: +warmUpMs.toFixed(1),
      logs,
      byBatch,
      vectors: r.vectors.map((v) => Array.from(v)),
    };
  } finally {
    await engine.close();
  }
}

function log(o, line) {
  if (!o.quiet) process.stderr.write(`[check] ${line}\n`);
}

async function runPhase(o) {
  let result;
  try {
    const [kind, arg] = [o.phase, o.phaseArg];
    if (kind === 'probe') result = await phaseProbe(o, arg);
    else if (kind === 'raw') result = await phaseRaw(o, arg);
    else if (kind === 'engine-best') result = await phaseEngine(o, 'best');
    else if (kind === 'engine-cpu') result = await phaseEngine(o, 'cpu');
    else throw new Error(`unknown phase ${kind}`);
  } catch (err) {
    result = { ok: false, error: String(err?.stack ?? err) };
  }
  process.stdout.write(`${RESULT_MARK}${JSON.stringify(result)}\n`);
  // Native threads (ORT, Dawn) can keep a process alive: leave once the result is out.
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// Orchestrator
// ---------------------------------------------------------------------------------------------

function sh(cmd, args, timeoutMs = 10_000) {
  return new Promise((res) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      res(
        err
          ? { ok: false, error: String(err.message).split('\n')[0], stdout: stdout ?? '', stderr: stderr ?? '' }
          : { ok: true, stdout, stderr },
      );
    });
  });
}

function which(cmd) {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = join(dir || '.', cmd);
    try {
      if (statSync(p).isFile()) return p;
    } catch {}
  }
  return null;
}

/** Polls nvidia-smi while a phase runs: the highest GPU utilization and memory seen. */
function gpuSampler(smi) {
  if (!smi) return { stop: async () => null };
  let stopped = false;
  const samples = [];
  const loop = (async () => {
    while (!stopped) {
      const r = await sh(smi, ['--query-gpu=utilization.gpu,memory.used', '--format=csv,noheader,nounits'], 5000);
      if (r.ok) {
        const [util, mem] = r.stdout
          .trim()
          .split('\n')[0]
          .split(',')
          .map((x) => Number(x.trim()));
        if (Number.isFinite(util)) samples.push({ util, mem });
      }
      await new Promise((res) => setTimeout(res, 500));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      if (!samples.length) return null;
      return {
        samples: samples.length,
        maxUtilPct: Math.max(...samples.map((s) => s.util)),
        maxMemMiB: Math.max(...samples.map((s) => s.mem)),
      };
    },
  };
}

/** Runs one phase in a child process of this same Node (same flags, e.g. a --import loader). */
function child(o, phase, arg, timeoutS) {
  const args = [
    ...process.execArgv,
    fileURLToPath(import.meta.url),
    '--phase',
    phase,
    ...(arg ? ['--phase-arg', arg] : []),
    '--model',
    o.model,
    '--onnx',
    o.onnx,
    '--engine',
    o.engine,
    '--ort',
    o.ort,
    '--seconds',
    String(o.seconds),
    '--warmup',
    String(o.warmup),
    '--batches',
    o.batches.join(','),
    '--seq',
    String(o.seq),
    '--threads',
    String(o.threads),
    '--cpu-workers',
    String(o.cpuWorkers),
    ...(o.quiet ? ['--quiet'] : []),
  ];
  return new Promise((res) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => {
      stderr += d;
      if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
      if (!o.quiet) process.stderr.write(d);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      p.kill('SIGKILL');
    }, Math.max(1, timeoutS) * 1000);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      const wallMs = +(performance.now() - t0).toFixed(0);
      const line = stdout.split('\n').find((l) => l.startsWith(RESULT_MARK));
      let result;
      if (line) result = JSON.parse(line.slice(RESULT_MARK.length));
      else if (timedOut) result = { ok: false, error: `timed out after ${timeoutS.toFixed(0)} s (killed)` };
      else result = { ok: false, error: `phase process exited with ${signal ? `signal ${signal}` : `code ${code}`} and no result` };
      // Native loggers (ORT, Dawn) write to stderr: keep the lines that explain a failure.
      const nativeLog = stderr
        .split('\n')
        .map((l) => l.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g'), '').trimEnd()) // ANSI colours
        .filter((l) => l && !l.startsWith('[check]'));
      res({ result, wallMs, nativeLog: nativeLog.slice(-40) });
    });
  });
}

function firstLine(s) {
  return (
    String(s ?? '')
      .split('\n')
      .find((l) => l.trim()) ?? ''
  );
}

/** The end of a long line (ORT's messages put the reason last). */
function tail(s, n) {
  return s.length <= n ? s : `…${s.slice(-(n - 1))}`;
}

function fmt(x) {
  if (x === null || x === undefined) return '–';
  if (typeof x !== 'number') return String(x);
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

function markdown(report) {
  const lines = [];
  lines.push(`## GPU check: ${report.host.gpu ?? 'no GPU'} — best provider: **${report.best}**`, '');
  lines.push('| provider | status | detail |', '| --- | --- | --- |');
  for (const [name, p] of Object.entries(report.providers)) {
    const why = p.ok
      ? ''
      : [firstLine(p.error), ...(p.nativeLog ?? []).filter((l) => /error|warning|fail/i.test(l)).slice(0, 2)]
          .map((l) => tail(l, 200))
          .join(' ⟶ ');
    const detail = p.ok ? `create ${fmt(p.createMs)} ms, first run ${fmt(p.firstRunMs)} ms` : why.replace(/\|/g, '\\|');
    lines.push(`| ${name} | ${p.ok ? 'ok' : 'FAILED'} | ${detail} |`);
  }
  lines.push('');
  const bs = report.config.batches;
  lines.push(
    `| sequences/s (${report.config.seq} tokens) | ${bs.map((b) => `batch ${b}`).join(' | ')} |`,
    `| --- |${bs.map(() => ' ---: |').join('')}`,
  );
  const row = (label, byBatch) => lines.push(`| ${label} | ${bs.map((b) => fmt(byBatch?.[b]?.seqPerSec ?? byBatch?.[b])).join(' | ')} |`);
  const best = report.best;
  if (best !== 'cpu') row(`raw ORT ${best}`, report.raw.best?.byBatch);
  row('raw ORT cpu', report.raw.cpu?.byBatch);
  if (best !== 'cpu') row(`raw ratio ${best}/cpu`, report.ratios.raw);
  row(`engine ${report.engine.best?.provider ?? best} (1 worker)`, report.engine.best?.byBatch);
  row(`engine cpu (${report.engine.cpu?.workers ?? '?'} workers)`, report.engine.cpu?.byBatch);
  row(`engine ratio ${best}/cpu`, report.ratios.engine);
  lines.push('');
  const c = report.cosine;
  lines.push(
    `cosine ${report.engine.best?.provider ?? best} vs cpu over ${c?.n ?? 0} sentences: min ${c?.min?.toFixed(6) ?? '–'}, mean ${c?.mean?.toFixed(6) ?? '–'}${c?.sameProvider ? ' (both on the CPU: no cross-provider check)' : ''}`,
  );
  const eb = report.engine.best;
  if (eb?.batchTokenBudget)
    lines.push(
      `engine batch token budget (warm-up probe): ${eb.provider} ${eb.batchTokenBudget}, cpu ${report.engine.cpu?.batchTokenBudget ?? '–'}`,
    );
  lines.push(
    `total ${(report.timings.totalMs / 1000).toFixed(1)} s; node ${report.host.node}, onnxruntime-node ${report.host.ortVersion}, ${report.host.cpus} cores`,
  );
  if (report.notes.length) lines.push('', ...report.notes.map((n) => `- ${n}`));
  return lines.join('\n');
}

async function orchestrate(o) {
  const started = performance.now();
  const deadline = started + o.budget * 1000;
  const left = () => (deadline - performance.now()) / 1000;
  const smi = o.nvidiaSmi ?? which('nvidia-smi');
  const ortPkg = readJsonMaybe(
    join(
      dirname(
        fileURLToPath(import.meta.resolve(o.ort.startsWith('.') || o.ort.startsWith('/') ? pathToFileURL(resolve(o.ort)).href : o.ort)),
      ),
      '..',
      'package.json',
    ),
  );
  const report = {
    schema: 1,
    startedAt: new Date().toISOString(),
    host: {
      hostname: os.hostname(),
      platform: `${process.platform}-${process.arch}`,
      kernel: os.release(),
      cpus: os.availableParallelism(),
      cpuModel: os.cpus()[0]?.model ?? null,
      memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
      node: process.version,
      ortVersion: ortPkg?.version ?? null,
      gpu: null,
      nvidiaSmi: null,
      env: Object.fromEntries(
        ['VK_DRIVER_FILES', 'VK_ICD_FILENAMES', 'LD_LIBRARY_PATH', '__EGL_VENDOR_LIBRARY_FILENAMES']
          .filter((k) => process.env[k])
          .map((k) => [k, process.env[k]]),
      ),
    },
    model: { dir: o.model, onnx: o.onnx, onnxBytes: statSync(o.onnx).size, ...modelShape(o) },
    config: {
      seconds: o.seconds,
      warmup: o.warmup,
      batches: o.batches,
      seq: o.seq,
      threads: o.threads,
      cpuWorkers: o.cpuWorkers,
      budgetS: o.budget,
      engine: o.engine,
      candidates: o.providers,
    },
    providers: {},
    best: 'cpu',
    raw: {},
    engine: {},
    ratios: { raw: null, engine: null },
    cosine: null,
    gpuUsage: {},
    timings: { phases: {}, totalMs: 0 },
    notes: [],
  };
  const save = () => {
    report.timings.totalMs = Math.round(performance.now() - started);
    mkdirSync(dirname(o.out), { recursive: true });
    writeFileSync(`${o.out}.tmp`, `${JSON.stringify(report, null, 2)}\n`);
    renameSync(`${o.out}.tmp`, o.out);
  };

  if (smi) {
    const q = await sh(smi, ['--query-gpu=name,driver_version,memory.total,compute_cap', '--format=csv,noheader']);
    const l = await sh(smi, ['-L']);
    report.host.nvidiaSmi = { query: q.ok ? q.stdout.trim() : q.error, list: l.ok ? l.stdout.trim() : l.error };
    if (q.ok) report.host.gpu = q.stdout.trim().split('\n')[0].split(',')[0].trim();
  }
  save();

  /** Runs a phase unless the budget is spent; records its wall time and GPU usage. */
  const phase = async (key, kind, arg, capS) => {
    const budget = Math.min(capS, left() - 2);
    if (budget < 5) {
      report.notes.push(`${key}: skipped, the time budget (--budget ${o.budget}) was spent`);
      save();
      return null;
    }
    log(o, `phase ${key} (limit ${budget.toFixed(0)} s)`);
    const sampler = gpuSampler(kind === 'probe' ? null : smi);
    const r = await child(o, kind, arg, budget);
    const usage = await sampler.stop();
    if (usage) report.gpuUsage[key] = usage;
    report.timings.phases[key] = r.wallMs;
    if (r.result.ok === false && r.nativeLog.length) r.result.nativeLog = r.nativeLog;
    save();
    return r.result;
  };

  // 1. Which providers can be created (and run once).
  for (const name of ['cpu', ...o.providers.filter((p) => p !== 'cpu')]) {
    const r = await phase(`probe.${name}`, 'probe', name, o.probeTimeout);
    report.providers[name] = r ?? { ok: false, error: 'skipped: time budget spent' };
    log(o, `provider ${name}: ${report.providers[name].ok ? 'ok' : `FAILED: ${firstLine(report.providers[name].error)}`}`);
    save();
  }
  report.best = o.providers.find((p) => p !== 'cpu' && report.providers[p]?.ok) ?? 'cpu';
  if (report.best === 'cpu')
    report.notes.push(
      'no accelerated provider worked: "best" is the CPU (the best-provider engine still runs, as one worker with all cores)',
    );
  save();

  // 2. Measurements, the best provider's first so that a short budget still answers the question.
  const perPhase = Math.max(60, o.batches.length * (o.seconds + 20) + 60);
  if (report.best !== 'cpu') report.raw.best = await phase('raw.best', 'raw', report.best, perPhase);
  report.engine.best = await phase('engine.best', 'engine-best', report.best, perPhase + 60);
  report.raw.cpu = await phase('raw.cpu', 'raw', 'cpu', perPhase);
  if (report.best === 'cpu') report.raw.best = report.raw.cpu ? { ...report.raw.cpu, sameAs: 'cpu' } : null;
  report.engine.cpu = await phase('engine.cpu', 'engine-cpu', null, perPhase + 60);

  // 3. Ratios and agreement.
  const ratio = (a, b) => {
    if (!a?.byBatch || !b?.byBatch) return null;
    return Object.fromEntries(
      o.batches.map((bt) => [bt, a.byBatch[bt] && b.byBatch[bt] ? +(a.byBatch[bt].seqPerSec / b.byBatch[bt].seqPerSec).toFixed(3) : null]),
    );
  };
  report.ratios.raw = ratio(report.raw.best, report.raw.cpu);
  report.ratios.engine = ratio(report.engine.best, report.engine.cpu);
  const va = report.engine.best?.vectors;
  const vb = report.engine.cpu?.vectors;
  if (va && vb && va.length === vb.length) {
    const { cosine } = await serviceModule(o, '../pooling/pool');
    const cs = va.map((v, i) => cosine(v, vb[i]));
    const providers = [report.engine.best.provider, report.engine.cpu.provider];
    // With no accelerator both sides run on the CPU: the figure then checks nothing across providers.
    const sameProvider = providers[0] === providers[1];
    report.cosine = {
      n: cs.length,
      min: Math.min(...cs),
      mean: cs.reduce((a, b) => a + b, 0) / cs.length,
      per: cs,
      providers,
      sameProvider,
    };
    if (sameProvider) report.notes.push(`cosine compares ${providers[0]} with ${providers[1]}: not a cross-provider agreement check`);
  }
  for (const e of [report.engine.best, report.engine.cpu])
    if (e?.vectors) e.vectors = `${e.vectors.length} × ${e.vectors[0]?.length ?? 0} (omitted)`;
  if (report.engine.best?.provider && report.engine.best.provider !== report.best) {
    report.notes.push(`the engine asked for ${report.best} but its worker runs on ${report.engine.best.provider} (see engine.best.logs)`);
  }
  for (const [k, v] of Object.entries({
    'raw.best': report.raw.best,
    'engine.best': report.engine.best,
    'raw.cpu': report.raw.cpu,
    'engine.cpu': report.engine.cpu,
  })) {
    if (v && v.ok === false) report.notes.push(`${k} failed: ${firstLine(v.error)}`);
  }
  save();
  const md = markdown(report);
  writeFileSync(`${o.out.replace(/\.json$/, '')}.md`, `${md}\n`);
  process.stdout.write(`${md}\n`);
  return report;
}

// ---------------------------------------------------------------------------------------------

const opts = parseArgs(process.argv.slice(2));
if (opts.phase) await runPhase(opts);
else {
  const report = await orchestrate(opts);
  const failed = !report.providers.cpu?.ok || !report.engine.cpu?.byBatch;
  process.exit(failed ? 1 : 0);
}
