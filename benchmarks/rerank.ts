/**
 * Reranking and fairness benchmark (issue: several models in one process, and reranking). In one run:
 *  1. raw ONNX Runtime on the MiniLM-L6-shaped cross-encoder: pairs/s at batch 64 on pairs of
 *     exactly `--tokens` tokens (the limit: the better of one session on every core and one
 *     single-threaded session per core);
 *  2. the service serving only that reranker under `--connections` connections of POST /rerank,
 *     each a query with `--texts` texts making pairs of the same length: pairs/s, and the ratio;
 *  3. fairness: the service serving an embedder (MiniLM-L6-shaped) and the reranker, while one
 *     client floods /rerank with `--connections` connections and another sends single-sentence
 *     /embed requests one after the other: the embed requests' p50/p99, with SCHEDULER=fifo (the
 *     oldest input first whatever its model, as one shared queue would) and SCHEDULER=fair, and
 *     the embed latency with no flood for reference.
 * Usage: npm run bench:rerank [-- --seconds 15 --tokens 64 --texts 16 --connections 64]
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { loadTokenizer } from '../src/runtime/tokenize.js';
import { ensureMiniLM, ensureMiniLMReranker, fmt, rawLimit, type Service, sentencesOfLength, startService } from './lib.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '15' },
    tokens: { type: 'string', default: '64' },
    texts: { type: 'string', default: '16' },
    connections: { type: 'string', default: '64' },
    port: { type: 'string', default: '18281' },
  },
});
const seconds = Number(values.seconds);
const tokens = Number(values.tokens);
const texts = Number(values.texts);
const connections = Number(values.connections);
let port = Number(values.port);

const embedder = ensureMiniLM();
const reranker = ensureMiniLMReranker();
const onnx = join(reranker, 'onnx/model.onnx');

// Pairs of exactly `tokens` tokens: [CLS] query [SEP] text [SEP] = (query tokens) + (text tokens) − 1.
const QUERY_TOKENS = 16;
const [query] = await sentencesOfLength(reranker, QUERY_TOKENS, 1);
const documents = await sentencesOfLength(reranker, tokens - QUERY_TOKENS + 1, 64);
const tok = loadTokenizer(join(reranker, 'tokenizer.json'), null);
for (const d of documents) {
  const n = (await tok.encode(query!, d)).getLength();
  if (n !== tokens) throw new Error(`pair length ${n}, expected ${tokens}`);
}
const bodies = Array.from({ length: 16 }, (_, i) =>
  JSON.stringify({ query, texts: Array.from({ length: texts }, (_, j) => documents[(i * texts + j) % documents.length]) }),
);
const embedSentences = await sentencesOfLength(embedder, 16, 32);

// Room for every connection's pairs, so the flood is throughput, not 429s.
const queueEnv = { MAX_QUEUE_INPUTS: String(connections * texts), MAX_QUEUE_TOKENS: String(connections * texts * tokens) };

console.log(
  `# Rerank benchmark: MiniLM-L6-shaped cross-encoder fp32, pairs of ${tokens} tokens, ${texts} texts per request, ${connections} connections, ${seconds}s per run\n`,
);
const raw = await rawLimit(onnx, { batch: 64, tokens, seconds: Math.min(seconds, 10), cores: 2 });
console.log(
  `raw ORT batch 64: 1 session × 2 threads ${fmt(raw.single)} pairs/s, 2 sessions × 1 thread ${fmt(raw.parallel)} pairs/s; limit ${fmt(raw.limit)} pairs/s`,
);

async function flood(service: Service, duration: number): Promise<{ pairsPerSec: number; non2xx: number; p99: number }> {
  const result = await autocannon({
    url: `${service.url}/rerank`,
    connections,
    duration,
    requests: bodies.map((body) => ({ method: 'POST', path: '/rerank', headers: { 'content-type': 'application/json' }, body })),
  });
  return { pairsPerSec: (result['2xx'] * texts) / result.duration, non2xx: result.non2xx, p99: result.latency.p99 };
}

/** Sequential single-sentence /embed requests from their own process, so the flood's event loop does not skew them. */
function probeEmbeds(url: string, durationMs: number): Promise<{ n: number; p50: number; p99: number; max: number; errors: number }> {
  const script = `
    const url = ${JSON.stringify(url)}; const sentences = ${JSON.stringify(embedSentences)};
    const lat = []; let errors = 0; const end = Date.now() + ${durationMs};
    (async () => {
      for (let i = 0; Date.now() < end; i++) {
        const t = performance.now();
        const r = await fetch(url + '/embed', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'embed', inputs: sentences[i % sentences.length] }) });
        await r.arrayBuffer();
        if (r.status !== 200) errors++; else lat.push(performance.now() - t);
      }
      lat.sort((a, b) => a - b);
      const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
      console.log(JSON.stringify({ n: lat.length, p50: q(0.5), p99: q(0.99), max: lat.at(-1) ?? NaN, errors }));
    })();`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`probe exited ${code}`))));
  });
}

// 2. Throughput: the reranker alone.
{
  const service = await startService({ MODELS: `rerank=${reranker}`, ...queueEnv }, port++);
  await flood(service, 3); // warm-up
  const r = await flood(service, seconds);
  await service.stop();
  console.log(
    `service /rerank (${connections} connections): ${fmt(r.pairsPerSec)} pairs/s (${fmt(r.pairsPerSec / texts)} requests/s, p99 ${r.p99} ms, non-2xx ${r.non2xx}); ` +
      `ratio to raw ORT limit ${fmt(r.pairsPerSec / raw.limit, 3)}`,
  );
}

// 3. Fairness: single embeds while /rerank is flooded, fifo vs fair.
const models = `embed=${embedder},rerank=${reranker}`;
const fairness: Record<string, { n: number; p50: number; p99: number; max: number; errors: number; pairsPerSec?: number }> = {};
for (const scheduler of ['fifo', 'fair'] as const) {
  const service = await startService({ MODELS: models, SCHEDULER: scheduler, ...queueEnv }, port++);
  if (scheduler === 'fifo') fairness.alone = await probeEmbeds(service.url, 5000);
  await flood(service, 2); // warm-up
  const [probe, f] = await Promise.all([probeEmbeds(service.url, seconds * 1000 - 1000), flood(service, seconds)]);
  fairness[scheduler] = { ...probe, pairsPerSec: f.pairsPerSec };
  await service.stop();
}
for (const [name, r] of Object.entries(fairness)) {
  const label = name === 'alone' ? 'no flood        ' : `flood, ${name.padEnd(4)}    `;
  console.log(
    `single /embed, ${label}: ${r.n} requests, p50 ${fmt(r.p50)} ms, p99 ${fmt(r.p99)} ms, max ${fmt(r.max)} ms, errors ${r.errors}` +
      (r.pairsPerSec !== undefined ? `; rerank flood ${fmt(r.pairsPerSec)} pairs/s` : ''),
  );
}
console.log(`embed p99 under the flood, fifo ÷ fair: ${fmt(fairness.fifo!.p99 / fairness.fair!.p99, 1)}×`);
