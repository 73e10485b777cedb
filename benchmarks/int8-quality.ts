/**
 * STS-B dev Spearman of a model served fp32 vs int8 (QUANTIZE=int8 path: quantized at load,
 * guard, workers), through the service's runtime. Usage: npx tsx benchmarks/int8-quality.ts [--model DIR]
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Engine } from '../src/runtime/engine.js';
import { spearman } from './eval-lib.js';
import { ROOT } from './lib.js';

const { values } = parseArgs({ options: { model: { type: 'string', default: join(ROOT, 'models/default') } } });
const file = resolve(ROOT, '../shared/assets/eval/stsbenchmark/train-dev.tsv');
if (!existsSync(file)) {
  console.log(`skipped: ${file} not found (needs ../shared)`);
  process.exit(0);
}
const rows = readFileSync(file, 'utf8')
  .split('\n')
  .slice(1)
  .map((l) => l.split('\t'))
  .filter((c) => c[0] === 'dev');
const a = rows.map((c) => c[6]!);
const b = rows.map((c) => c[7]!);
const gold = rows.map((c) => Number(c[5]));

console.log(`# STS-B dev (${rows.length} pairs), ${values.model}, through the runtime\n`);
console.log('| precision | dimensions | Spearman | agreement with fp32 (probe) |');
console.log('|---|---|---|---|');
for (const quantize of ['none', 'int8'] as const) {
  const engine = await Engine.load({ modelDir: values.model!, quantize });
  await engine.warmUp();
  for (const dimensions of [undefined, 64]) {
    const va = (await engine.embed(a, { dimensions })).vectors;
    const vb = (await engine.embed(b, { dimensions })).vectors;
    const sims = va.map((v, i) => v.reduce((s, x, d) => s + x * vb[i]![d]!, 0));
    const p = engine.info.precision;
    console.log(
      `| ${p.precision}${p.fallback ? ` (fell back: ${p.fallback})` : ''} | ${dimensions ?? engine.spec.hiddenSize} | ${spearman(sims, gold).toFixed(4)} | ${p.agreement?.toFixed(5) ?? '—'} |`,
    );
  }
  await engine.close();
}
