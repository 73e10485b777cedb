/**
 * Bulk ingestion: streams a JSONL file into a collection of a running service, in batches, with a
 * progress bar (docs/s, ETA) on stderr. Embedding goes through the service's own batching engine;
 * 429/503 answers are retried after their Retry-After, so ingestion can run beside live traffic.
 *
 *   npm run ingest -- --collection NAME file.jsonl [--url http://127.0.0.1:8080] [--batch 64]
 *                     [--concurrency 2] [--create] [--api-key KEY] [--id-field id] [--text-field text]
 *
 * Each line is a JSON object with an id (`id`, else `_id`), and `text` and/or `vector`, and optional
 * `metadata` (MS MARCO / BEIR corpus files work as they are).
 */
import { createReadStream, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    collection: { type: 'string' },
    url: { type: 'string', default: process.env.EMBED_URL ?? 'http://127.0.0.1:8080' },
    batch: { type: 'string', default: '64' },
    concurrency: { type: 'string', default: '2' },
    create: { type: 'boolean', default: false },
    'api-key': { type: 'string', default: process.env.API_KEY },
    'id-field': { type: 'string', default: 'id' },
    'text-field': { type: 'string', default: 'text' },
    help: { type: 'boolean', short: 'h' },
  },
});
const file = positionals[0];
if (values.help || !values.collection || !file) {
  process.stderr.write(
    'usage: npm run ingest -- --collection NAME file.jsonl [--url URL] [--batch 64] [--concurrency 2] [--create] [--api-key KEY]\n',
  );
  process.exit(values.help ? 0 : 2);
}
const base = values.url!.replace(/\/+$/, '');
const collection = values.collection!;
const batchSize = Number(values.batch);
const concurrency = Number(values.concurrency);
const headers: Record<string, string> = { 'content-type': 'application/json' };
if (values['api-key']) headers.authorization = `Bearer ${values['api-key']}`;

interface Doc {
  id: string;
  text?: string;
  vector?: number[];
  metadata?: Record<string, unknown>;
}

function parseLine(line: string, lineNo: number): Doc {
  let obj: Record<string, unknown>;
  try {
    obj = JSON.parse(line) as Record<string, unknown>;
  } catch {
    throw new Error(`${file}:${lineNo}: not valid JSON`);
  }
  const id = obj[values['id-field']!] ?? obj._id;
  if (typeof id !== 'string' && typeof id !== 'number') throw new Error(`${file}:${lineNo}: no id (field ${values['id-field']} or _id)`);
  const text = obj[values['text-field']!];
  const doc: Doc = { id: String(id) };
  if (typeof text === 'string' && text.length) doc.text = text;
  if (Array.isArray(obj.vector)) doc.vector = obj.vector as number[];
  if (obj.metadata && typeof obj.metadata === 'object' && Object.keys(obj.metadata).length)
    doc.metadata = obj.metadata as Record<string, unknown>;
  if (!doc.text && !doc.vector) throw new Error(`${file}:${lineNo}: needs text or vector`);
  return doc;
}

async function request(method: string, path: string, body?: unknown): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if ((res.status === 429 || res.status === 503) && attempt < 50) {
      const wait = Number(res.headers.get('retry-after') ?? '1') * 1000;
      await res.arrayBuffer();
      await new Promise((r) => setTimeout(r, wait));
      continue;
    }
    return res;
  }
}

/** Lines in the file, for the ETA (a quick byte scan). */
async function countLines(): Promise<number> {
  let n = 0;
  for await (const chunk of createReadStream(file!)) for (const b of chunk as Buffer) if (b === 10) n++;
  return n;
}

const total = await countLines();
if (values.create) {
  const res = await request('PUT', `/collections/${encodeURIComponent(collection)}`, {});
  if (res.status !== 200) throw new Error(`creating ${collection}: ${res.status} ${await res.text()}`);
}

const started = performance.now();
let done = 0;
const tty = process.stderr.isTTY;
let lastDraw = 0;
function draw(final = false): void {
  const now = performance.now();
  if (!final && now - lastDraw < (tty ? 100 : 2000)) return;
  lastDraw = now;
  const secs = (now - started) / 1000;
  const rate = done / Math.max(secs, 1e-3);
  const width = 30;
  const frac = total ? Math.min(1, done / total) : 0;
  const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
  const eta = rate > 0 && total > done ? `${Math.ceil((total - done) / rate)}s` : '0s';
  const line = `[${bar}] ${done}/${total} docs  ${rate.toFixed(1)} docs/s  ETA ${eta}`;
  process.stderr.write(tty ? `\r${line}` : `${line}\n`);
}

const inflight = new Set<Promise<void>>();
async function send(batch: Doc[]): Promise<void> {
  const res = await request('POST', `/collections/${encodeURIComponent(collection)}/documents`, { documents: batch });
  if (res.status !== 200) throw new Error(`upsert failed: ${res.status} ${await res.text()}`);
  done += batch.length;
  draw();
}

let batch: Doc[] = [];
let lineNo = 0;
const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
for await (const line of lines) {
  lineNo++;
  if (!line.trim()) continue;
  batch.push(parseLine(line, lineNo));
  if (batch.length === batchSize) {
    const p = send(batch).finally(() => inflight.delete(p));
    inflight.add(p);
    batch = [];
    if (inflight.size >= concurrency) await Promise.race(inflight);
  }
}
if (batch.length) inflight.add(send(batch));
await Promise.all(inflight);
draw(true);
if (tty) process.stderr.write('\n');
const secs = (performance.now() - started) / 1000;
process.stdout.write(
  `${JSON.stringify({ collection, documents: done, seconds: Number(secs.toFixed(2)), docs_per_second: Number((done / secs).toFixed(1)), bytes: statSync(file).size })}\n`,
);
