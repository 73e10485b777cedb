import { EmbeddingSpace } from "./helpers.js";
import { scoreCandidates } from "../../src/index/index.js";
import hnswlib from "hnswlib-node";
const n = 20000;
const space = new EmbeddingSpace(1234, { noise: Number(process.env.NOISE ?? 0.15), spread: Number(process.env.SPREAD ?? 0.35) });
let t = Date.now();
const { vectors } = space.sample(n, 1);
const { vectors: queries } = space.sample(200, 2);
console.log("gen ms", Date.now() - t);
t = Date.now();
const idx = new hnswlib.HierarchicalNSW("ip", 384);
idx.initIndex(n, 16, 200, 100, false);
vectors.forEach((v, i) => idx.addPoint(Array.from(v), i));
console.log("build ms", Date.now() - t);
t = Date.now();
const truth = queries.map((q) => scoreCandidates(q, vectors, "cosine", 10).map((x) => x.index));
console.log("truth ms", Date.now() - t, "top1 score", scoreCandidates(queries[0]!, vectors, "cosine", 10).map(x=>x.score.toFixed(3)).join(" "));
for (const ef of [16, 32, 64, 100, 128, 256]) {
  idx.setEf(ef);
  let hit = 0;
  t = Date.now();
  queries.forEach((q, i) => {
    const r = idx.searchKnn(Array.from(q), 10).neighbors;
    const s = new Set(truth[i]);
    for (const x of r) if (s.has(x)) hit++;
  });
  console.log("ef", ef, "recall", hit / 2000, "ms", Date.now() - t);
}
