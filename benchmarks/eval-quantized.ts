/**
 * The storage / quality trade-off of quantized embedding outputs (`embedding_type` /
 * `encoding_format`: float, int8, binary), through the service's runtime, on the evaluation sets:
 * STS-B dev (Spearman) and MS MARCO 5k (nDCG@10, recall@10).
 *
 *   npm run eval:quantized [-- --model DIR] [-- --dimensions N]
 *
 * How each type is scored, as a vector store would: float by dot product (the vectors are
 * normalized); int8 by the dot product of the integers (what int8 indexes compute); binary by
 * Hamming distance (fewer differing bits = more similar), and "binary + int8 rescoring", the usual
 * recipe: the 100 nearest by Hamming distance re-ranked by int8 dot product. int8 uses the model's
 * calibration ranges (embedder.json `calibration`, else the built-in set), exactly as served.
 * Skips (exit 0) when ../shared/assets/eval is absent.
 */
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { bytesPerVector, type EmbeddingType, quantize } from '../src/pooling/index.js';
import { Engine } from '../src/runtime/engine.js';
import { EVAL, loadMsmarco, loadStsb, retrievalScores, spearman } from './eval-lib.js';

const ROOT = resolve(import.meta.dirname, '..');
const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const MODEL = resolve(arg('--model') ?? join(ROOT, 'models/default'));
const RESCORE = 100;

if (!existsSync(EVAL)) {
  console.log(`skipped: ${EVAL} is absent (the evaluation sets live in ../shared/assets/eval)`);
  process.exit(0);
}

const engine = await Engine.load({ modelDir: MODEL, workers: 1, intraOpThreads: 2, inferenceNice: 19 });
const dimensions = Number(arg('--dimensions') ?? engine.spec.hiddenSize);

/** Float and int8 vectors of every text, through the engine as a request asking for int8 gets them. */
async function embedAll(texts: string[]): Promise<{ float: Float32Array[]; int8: Int8Array[]; binary: Uint8Array[] }> {
  const out = { float: [] as Float32Array[], int8: [] as Int8Array[], binary: [] as Uint8Array[] };
  for (let i = 0; i < texts.length; i += 256) {
    const r = await engine.embed(texts.slice(i, i + 256), { dimensions, embeddingType: 'int8' });
    out.float.push(...r.vectors);
    out.int8.push(...(r.quantized as Int8Array[]));
    out.binary.push(...r.vectors.map((v) => quantize(v, 'ubinary') as Uint8Array));
  }
  return out;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

const POPCOUNT = Uint8Array.from({ length: 256 }, (_, b) => b.toString(2).replace(/0/g, '').length);
function hamming(a: Uint8Array, b: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) n += POPCOUNT[a[i]! ^ b[i]!]!;
  return n;
}

const t0 = performance.now();
const sts = loadStsb('dev');
const ms = loadMsmarco();
const [sa, sb, docs, queries] = [await embedAll(sts.a), await embedAll(sts.b), await embedAll(ms.docs), await embedAll(ms.queries)];
await engine.close();
const embedSeconds = (performance.now() - t0) / 1000;

interface Row {
  type: string;
  bytes: number;
  note?: string;
  sts: number;
  ndcg: number;
  recall: number;
}
const rows: Row[] = [];
const score = (
  type: string,
  storage: EmbeddingType,
  pair: (i: number) => number,
  retrieve: (qi: number) => Float64Array,
  note?: string,
): void => {
  const ret = retrievalScores(ms, retrieve);
  rows.push({
    type,
    bytes: bytesPerVector(storage, dimensions),
    note,
    sts: spearman(
      sts.gold.map((_, i) => pair(i)),
      sts.gold,
    ),
    ndcg: ret.ndcg,
    recall: ret.recall,
  });
};
score(
  'float32',
  'float',
  (i) => dot(sa.float[i]!, sb.float[i]!),
  (q) => Float64Array.from(docs.float, (d) => dot(d, queries.float[q]!)),
);
score(
  'int8',
  'int8',
  (i) => dot(sa.int8[i]!, sb.int8[i]!),
  (q) => Float64Array.from(docs.int8, (d) => dot(d, queries.int8[q]!)),
);
score(
  'binary (Hamming)',
  'binary',
  (i) => -hamming(sa.binary[i]!, sb.binary[i]!),
  (q) => Float64Array.from(docs.binary, (d) => -hamming(d, queries.binary[q]!)),
);
score(
  `binary + int8 rescoring of the top ${RESCORE}`,
  'binary',
  (i) => -hamming(sa.binary[i]!, sb.binary[i]!),
  (q) => {
    const ham = docs.binary.map((d, di) => [hamming(d, queries.binary[q]!), di] as const).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    const s = new Float64Array(docs.binary.length).fill(-Infinity);
    // Shortlisted documents rank above the rest; among them, by int8 dot product.
    ham.slice(0, RESCORE).forEach(([, di]) => (s[di] = 1e9 + dot(docs.int8[di]!, queries.int8[q]!)));
    return s;
  },
  `(+${bytesPerVector('int8', dimensions)} int8 kept for rescoring)`,
);

const f = rows[0]!;
const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
console.log(
  `model ${MODEL} at ${dimensions} dimensions; calibration: ${engine.calibration.source}; ${cpu}; embedding took ${embedSeconds.toFixed(0)} s\n`,
);
console.log('| output | bytes / vector | vs float32 | STS-B dev Spearman | MS MARCO 5k nDCG@10 | recall@10 |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const r of rows) {
  const rel = (x: number, base: number): string => `${x.toFixed(3)} (${((x / base) * 100).toFixed(1)}%)`;
  console.log(
    `| ${r.type} | ${r.bytes}${r.note ? ` ${r.note}` : ''} | ${(f.bytes / r.bytes).toFixed(0)}× smaller | ${rel(r.sts, f.sts)} | ${rel(r.ndcg, f.ndcg)} | ${rel(r.recall, f.recall)} |`,
  );
}
