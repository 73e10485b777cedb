/**
 * Splits a model into per-layer stages ahead of time (what the service otherwise does on first
 * start), writes them to the stage cache and prints them.
 *
 *   npm run model:split -- DIR [--file model_quantized.onnx] [--cache CACHE_DIR]
 *
 * DIR is a model directory (model.onnx or onnx/model.onnx) or an .onnx file. The stages go to
 * `<dir of the .onnx>/.stages/<key>/` (or CACHE_DIR/<key>/); an existing valid cache is reused.
 */
import path from 'node:path';
import { ensureStages, NotSplittableError, resolveOnnxPath } from '../src/runtime/onnx/cache.js';

function usage(): never {
  console.error('usage: model-split DIR|FILE.onnx [--file NAME.onnx] [--cache CACHE_DIR]');
  process.exit(2);
}

const args = process.argv.slice(2);
const positional: string[] = [];
const flags: Record<string, string> = {};
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  if (a === '-h' || a === '--help') usage();
  if (a.startsWith('--')) flags[a.slice(2)] = args[++i] ?? usage();
  else positional.push(a);
}
if (positional.length !== 1) usage();

try {
  const onnx = resolveOnnxPath(positional[0]!, flags.file);
  const started = performance.now();
  const { dir, manifest, reused } = await ensureStages(onnx, flags.cache);
  const ms = performance.now() - started;
  console.log(`${path.relative(process.cwd(), onnx) || onnx}: ${manifest.numLayers} layers under ${manifest.layerScope}`);
  console.log(`${reused ? 'reused' : 'wrote'} ${path.relative(process.cwd(), dir) || dir} (${ms.toFixed(0)} ms)\n`);
  const rows = manifest.stages.map((s) => [
    s.file,
    String(s.nodes),
    String(s.initializers),
    (s.weightBytes / 1e6).toFixed(2),
    s.inputs.join(', '),
    s.outputs.join(', '),
  ]);
  const head = ['file', 'nodes', 'inits', 'weights MB', 'inputs', 'outputs'];
  const widths = head.map((h, i) => Math.min(60, Math.max(h.length, ...rows.map((r) => r[i]!.length))));
  const fmt = (r: string[]): string =>
    r.map((c, i) => (c.length > widths[i]! ? `${c.slice(0, widths[i]! - 1)}…` : c.padEnd(widths[i]!))).join('  ');
  console.log(fmt(head));
  for (const r of rows) console.log(fmt(r));
  console.log('\nhidden state after layer k (what layer k+1, the suffix or the caller reads):');
  manifest.hiddenStates.forEach((name, k) => console.log(`  ${String(k).padStart(2)}  ${name}${k === 0 ? '   (embeddings output)' : ''}`));
  console.log(`output: ${manifest.outputName}`);
  for (const note of manifest.notes) console.log(`note: ${note}`);
} catch (err) {
  console.error(err instanceof NotSplittableError ? err.message : ((err as Error).stack ?? String(err)));
  process.exit(1);
}
