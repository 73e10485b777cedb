/**
 * Writes an int8 copy of a model for CPU serving: DIR/onnx/model_quantized.onnx (beside
 * model.onnx), then checks it against fp32 on a fixed set of 16 sentences.
 *
 *   npm run model:quantize -- DIR [--per-tensor] [--out FILE] [--min-cosine 0.99]
 *
 * Prints the sizes before/after, the nodes rewritten, and the mean cosine between fp32 and int8
 * mean-pooled outputs; exits 1 if that is under --min-cosine (default 0.99).
 */
import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { graphInputs, padFeeds } from '../src/runtime/feeds.js';
import { findTokenizer, loadForSplit, resolveOnnxPath } from '../src/runtime/onnx/cache.js';
import { saveModel } from '../src/runtime/onnx/model.js';
import { PROBE_SENTENCES, tokenize } from '../src/runtime/onnx/probe.js';
import { agreement, quantizeModel } from '../src/runtime/onnx/quantize.js';

function usage(): never {
  console.error('usage: model-quantize DIR|FILE.onnx [--per-tensor] [--out FILE] [--min-cosine 0.99]');
  process.exit(2);
}

const args = process.argv.slice(2);
const positional: string[] = [];
const flags: Record<string, string | true> = {};
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  if (a === '-h' || a === '--help') usage();
  if (a === '--per-tensor') flags['per-tensor'] = true;
  else if (a.startsWith('--')) flags[a.slice(2)] = args[++i] ?? usage();
  else positional.push(a);
}
if (positional.length !== 1) usage();

const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;

try {
  const src = resolveOnnxPath(positional[0]!);
  const out = typeof flags.out === 'string' ? path.resolve(flags.out) : path.join(path.dirname(src), 'model_quantized.onnx');
  const perChannel = flags['per-tensor'] !== true;
  const minCosine = typeof flags['min-cosine'] === 'string' ? Number(flags['min-cosine']) : 0.99;

  let t = performance.now();
  const model = loadForSplit(src);
  const { model: q, report } = quantizeModel(model, { perChannel });
  const size = saveModel(q, out);
  const before = fs.statSync(src).size;
  console.log(`${path.relative(process.cwd(), src)} → ${path.relative(process.cwd(), out)} (${(performance.now() - t).toFixed(0)} ms)`);
  console.log(`size: ${mb(before)} → ${mb(size)} (${((100 * size) / before).toFixed(0)}%)`);
  console.log(
    `${perChannel ? 'per-channel' : 'per-tensor'} int8: ${report.quantized} MatMul/Gemm → DynamicQuantizeMatMul (${report.weights} weights, ${report.fusedBias} bias Adds folded); weights ${mb(report.floatBytes)} fp32 → ${mb(report.int8Bytes)}`,
  );
  for (const s of report.skipped) console.log(`  left in fp32: ${s.node} (${s.reason})`);

  const tokenizer = findTokenizer(src);
  if (!tokenizer) {
    console.log('no tokenizer.json found beside the model: skipping the fp32/int8 agreement check');
  } else {
    t = performance.now();
    const opts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 2, graphOptimizationLevel: 'all', logSeverityLevel: 3 };
    const fp32 = await ort.InferenceSession.create(src, opts);
    const int8 = await ort.InferenceSession.create(out, opts);
    const feeds = padFeeds(await tokenize(tokenizer, PROBE_SENTENCES, 128), graphInputs(fp32)).feeds;
    const a = await agreement(fp32, int8, feeds);
    await fp32.release();
    await int8.release();
    console.log(
      `agreement on ${PROBE_SENTENCES.length} sentences (cosine of mean-pooled outputs, fp32 vs int8): mean ${a.mean.toFixed(5)}, min ${a.min.toFixed(5)}`,
    );
    if (a.mean < minCosine) {
      console.error(`mean cosine ${a.mean.toFixed(5)} is under ${minCosine}: do not serve this model`);
      process.exit(1);
    }
  }
} catch (err) {
  console.error((err as Error).stack ?? String(err));
  process.exit(1);
}
