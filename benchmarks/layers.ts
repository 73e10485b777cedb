/**
 * Layer-exit benchmark (2D Matryoshka depth): /embed throughput under 64 connections at every exit
 * layer of the MiniLM-shaped model, as a ratio to full depth, all against one service in one run.
 * Usage: npm run bench:layers [-- --seconds 10 --tokens 32]
 */
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { ensureMiniLM, fmt, sentencesOfLength, startService } from './lib.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    tokens: { type: 'string', default: '32' },
    connections: { type: 'string', default: '64' },
    port: { type: 'string', default: '18281' },
  },
});
const seconds = Number(values.seconds);
const tokens = Number(values.tokens);
const modelDir = ensureMiniLM();
const sentences = await sentencesOfLength(modelDir, tokens, 64);
const service = await startService({ MODEL_DIR: modelDir }, Number(values.port));
const info = (await (await fetch(`${service.url}/info`)).json()) as { layers: number; layer_exit: { available: boolean } };
if (!info.layer_exit.available) throw new Error('the service could not split the model into layers');

async function rate(layer: number | undefined, duration = seconds): Promise<number> {
  const result = await autocannon({
    url: `${service.url}/embed`,
    connections: Number(values.connections),
    duration,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    requests: sentences.map((s) => ({ body: JSON.stringify(layer === undefined ? { inputs: s } : { inputs: s, layer }) })),
  });
  if (result.non2xx) throw new Error(`${result.non2xx} non-2xx answers at layer ${layer}`);
  return result.requests.total / result.duration;
}

console.log(`# Layer exit: MiniLM-L6-shaped, ${tokens} tokens/input, ${values.connections} connections, ${seconds}s per point\n`);
// Warm both paths first (arenas grow, caches fill), then measure full depth before and after the
// layers, so drift on a shared machine shows instead of skewing every ratio.
await rate(undefined, 3);
await rate(1, 3);
const before = await rate(undefined);
const layers: Array<[string, number]> = [];
for (let layer = 1; layer <= info.layers; layer++) layers.push([`layer ${layer}`, await rate(layer)]);
const after = await rate(undefined);
const full = (before + after) / 2;
const rows: Array<[string, number]> = [[`full graph (no layer; ${fmt(before)} before, ${fmt(after)} after)`, full], ...layers];
await service.stop();
console.log('| depth | req/s | ratio to full depth |');
console.log('|---|---|---|');
for (const [name, r] of rows) console.log(`| ${name} | ${fmt(r)} | ${fmt(r / full, 2)} |`);
