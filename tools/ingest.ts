/**
 * Bulk ingestion: streams a JSONL file into a collection of a running service, in batches, with a
 * progress bar (docs/s, ETA) on stderr. Embedding goes through the service's own batching engine;
 * 429/503 answers are retried after their Retry-After, so ingestion can run beside live traffic.
 *
 *   npm run ingest -- --collection NAME file.jsonl [--url http://127.0.0.1:8080] [--batch 64]
 *                     [--concurrency 2] [--create] [--api-key KEY] [--id-field id] [--text-field text]
 *                     [--resume] [--state PATH]
 *
 * Each line is a JSON object with an id (`id`, else `_id`), and `text` and/or `vector`, and optional
 * `metadata` (MS MARCO / BEIR corpus files work as they are).
 *
 * Progress is kept in a small state file (`--state`; by default `<file>.ingest-<collection>.json`
 * beside the input, or in the working directory when the input's directory is read-only): the last
 * line up to which every line is acknowledged by the service (durable there), rewritten atomically
 * after each acknowledged batch. When the run stops (the server died, a line is bad), it says in one
 * line what failed and where to resume; `--resume` continues after that line. Batches that were in
 * flight are sent again, which is safe: an upsert by id replaces the document with the same content.
 */
import {
  accessSync,
  closeSync,
  constants,
  createReadStream,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
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
    resume: { type: 'boolean', default: false },
    state: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
const file = positionals[0];
if (values.help || !values.collection || !file) {
  process.stderr.write(
    'usage: npm run ingest -- --collection NAME file.jsonl [--url URL] [--batch 64] [--concurrency 2] [--create] [--api-key KEY]\n' +
      '                         [--id-field id] [--text-field text] [--resume] [--state PATH]\n',
  );
  process.exit(values.help ? 0 : 2);
}
const base = values.url!.replace(/\/+$/, '');
const collection = values.collection!;
const batchSize = Number(values.batch);
const concurrency = Number(values.concurrency);
const headers: Record<string, string> = { 'content-type': 'application/json' };
if (values['api-key']) headers.authorization = `Bearer ${values['api-key']}`;

/** A failure that ends the run; its message is the one line the user sees. */
class Stop extends Error {}

/** Prints one line and exits non-zero: no stack, whatever went wrong. */
function fail(message: string, code = 1): never {
  process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}ingest: ${message}\n`);
  process.exit(code);
}

// --- Progress state ---------------------------------------------------------------------------

interface State {
  /** The input, as an absolute path, and the collection: a state file belongs to one pair. */
  file: string;
  collection: string;
  /** Every line up to this one (1-based; 0: none) is acknowledged by the service. */
  line: number;
  /** Documents acknowledged up to `line`, over all runs. */
  documents: number;
  complete: boolean;
  updated: string;
}

function defaultStatePath(): string {
  const name = `${basename(file!)}.ingest-${collection}.json`;
  try {
    accessSync(dirname(resolve(file!)), constants.W_OK);
    return join(dirname(resolve(file!)), name);
  } catch {
    return resolve(name);
  }
}

const statePath = resolve(values.state ?? defaultStatePath());

function readState(): State | undefined {
  let text: string;
  try {
    text = readFileSync(statePath, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as State;
  } catch {
    fail(`the state file ${statePath} is not valid JSON; remove it to start over`);
  }
}

/** Replaces the state file atomically: a crash leaves the old state or the new one, never a torn file. */
function writeState(state: State): void {
  const tmp = `${statePath}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, `${JSON.stringify(state)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, statePath);
}

const previous = readState();
if (previous && (previous.collection !== collection || previous.file !== resolve(file))) {
  fail(`the state file ${statePath} belongs to ${previous.file} into collection ${previous.collection}; give another --state`);
}
let startAfter = 0;
let documentsBefore = 0;
if (values.resume) {
  if (!previous) fail(`--resume: no state file ${statePath} (nothing to resume; run without --resume to start)`);
  if (previous.complete) {
    process.stderr.write(`ingest: nothing to resume: ${file} was fully ingested into ${collection} (${previous.documents} documents)\n`);
    process.exit(0);
  }
  startAfter = previous.line;
  documentsBefore = previous.documents;
  process.stderr.write(`ingest: resuming after line ${startAfter} (${documentsBefore} documents acknowledged before)\n`);
} else if (previous && !previous.complete) {
  process.stderr.write(
    `ingest: ${statePath} records an unfinished run (up to line ${previous.line}); starting over (--resume continues it)\n`,
  );
}

// --- Input -----------------------------------------------------------------------------------

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
    throw new Stop(`${file}:${lineNo}: not valid JSON`);
  }
  const id = obj[values['id-field']!] ?? obj._id;
  if (typeof id !== 'string' && typeof id !== 'number') throw new Stop(`${file}:${lineNo}: no id (field ${values['id-field']} or _id)`);
  const text = obj[values['text-field']!];
  const doc: Doc = { id: String(id) };
  if (typeof text === 'string' && text.length) doc.text = text;
  if (Array.isArray(obj.vector)) doc.vector = obj.vector as number[];
  if (obj.metadata && typeof obj.metadata === 'object' && Object.keys(obj.metadata).length)
    doc.metadata = obj.metadata as Record<string, unknown>;
  if (!doc.text && !doc.vector) throw new Stop(`${file}:${lineNo}: needs text or vector`);
  return doc;
}

/** Lines in the file, for the ETA (a quick byte scan). */
async function countLines(): Promise<number> {
  let n = 0;
  for await (const chunk of createReadStream(file!)) for (const b of chunk as Buffer) if (b === 10) n++;
  return n;
}

// --- The service -----------------------------------------------------------------------------

/** What went wrong on the wire, in words (fetch's own error only says "fetch failed"). */
function describeNetworkError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? '';
  if (code === 'ECONNREFUSED') return `nothing is listening at ${base} (connection refused)`;
  if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE')
    return `the server at ${base} closed the connection (${code})`;
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return `the server at ${base} stopped answering (${code})`;
  return `cannot reach ${base} (${code || cause?.message || (err as Error).message})`;
}

async function request(method: string, path: string, body?: unknown): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw new Stop(describeNetworkError(err));
    }
    if ((res.status === 429 || res.status === 503) && attempt < 50) {
      const wait = Number(res.headers.get('retry-after') ?? '1') * 1000;
      await res.arrayBuffer();
      await new Promise((r) => setTimeout(r, wait));
      continue;
    }
    return res;
  }
}

/** The service's error message, with `documents[i]` turned into the line it came from. */
async function refusal(res: Response, lines: readonly number[]): Promise<string> {
  const text = await res.text();
  let message = text;
  try {
    const body = JSON.parse(text) as { error?: string; error_code?: string };
    if (body.error) message = `${body.error_code ? `${body.error_code}: ` : ''}${body.error}`;
  } catch {}
  // `documents[3].text` → `text on line 57`, `documents[3]` → `line 57`.
  return message.replace(/documents\[(\d+)\](?:\.(\w+))?/g, (all, i: string, field?: string) => {
    const line = lines[Number(i)];
    if (line === undefined) return all;
    return field ? `${field} on line ${line}` : `line ${line}`;
  });
}

// --- The run ---------------------------------------------------------------------------------

const total = await countLines();
if (values.create) {
  const res = await request('PUT', `/collections/${encodeURIComponent(collection)}`, {}).catch((err: unknown) =>
    fail(`creating collection ${collection}: ${(err as Error).message}`),
  );
  if (res.status !== 200) fail(`creating collection ${collection}: ${res.status} ${await refusal(res, [])}`);
}

const started = performance.now();
/** Documents acknowledged in this run (whatever their order). */
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
  const todo = total - startAfter;
  const frac = todo > 0 ? Math.min(1, done / todo) : 0;
  const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
  const eta = rate > 0 && todo > done ? `${Math.ceil((todo - done) / rate)}s` : '0s';
  const line = `[${bar}] ${done}/${todo} docs  ${rate.toFixed(1)} docs/s  ETA ${eta}`;
  process.stderr.write(tty ? `\r${line}` : `${line}\n`);
}

/**
 * Acknowledgements arrive out of order (batches run concurrently): the resume point is the last
 * line before the oldest batch not yet acknowledged.
 */
interface Batch {
  docs: Doc[];
  /** The line of each document. */
  lines: number[];
  /** The last line this batch covers (blank lines after its last document included). */
  lastLine: number;
  acked: boolean;
}
const pending: Batch[] = [];
let acknowledgedLine = startAfter;
let acknowledgedDocs = documentsBefore;

/** Moves the resume point over the oldest batches once they are acknowledged, and records it. */
function advance(): void {
  let moved = false;
  while (pending[0]?.acked) {
    const b = pending.shift()!;
    acknowledgedLine = b.lastLine;
    acknowledgedDocs += b.docs.length;
    moved = true;
  }
  if (moved) writeState(progress(false));
}

function acknowledge(batch: Batch): void {
  batch.acked = true;
  done += batch.docs.length;
  advance();
  draw();
}

function progress(complete: boolean): State {
  return {
    file: resolve(file!),
    collection,
    line: acknowledgedLine,
    documents: acknowledgedDocs,
    complete,
    updated: new Date().toISOString(),
  };
}

async function send(batch: Batch): Promise<void> {
  const lines = `lines ${batch.lines[0]}-${batch.lines.at(-1)}`;
  let res: Response;
  try {
    res = await request('POST', `/collections/${encodeURIComponent(collection)}/documents`, { documents: batch.docs });
  } catch (err) {
    throw err instanceof Stop ? new Stop(`${err.message} while upserting ${lines}`) : err;
  }
  if (res.status !== 200) throw new Stop(`the service refused ${lines}: ${res.status} ${await refusal(res, batch.lines)}`);
  await res.arrayBuffer();
  acknowledge(batch);
}

/** The first failure; the run stops reading and waits for the batches in flight. */
let failure: Error | undefined;
const inflight = new Set<Promise<void>>();
function dispatch(batch: Batch): void {
  pending.push(batch);
  const p = send(batch)
    .catch((err: unknown) => {
      failure ??= err as Error;
    })
    .finally(() => inflight.delete(p));
  inflight.add(p);
}

let batch: Batch = { docs: [], lines: [], lastLine: startAfter, acked: false };
let lineNo = 0;
try {
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of lines) {
    lineNo++;
    if (lineNo <= startAfter) continue;
    if (line.trim()) {
      batch.docs.push(parseLine(line, lineNo));
      batch.lines.push(lineNo);
    }
    batch.lastLine = lineNo;
    if (batch.docs.length === batchSize) {
      dispatch(batch);
      batch = { docs: [], lines: [], lastLine: lineNo, acked: false };
      while (inflight.size >= concurrency && !failure) await Promise.race(inflight);
      if (failure) break;
    }
  }
  if (!failure && batch.lastLine > acknowledgedLine) {
    if (batch.docs.length > 0) dispatch(batch);
    else {
      // Only blank lines after the last batch: acknowledged as soon as what comes before is.
      batch.acked = true;
      pending.push(batch);
    }
  }
} catch (err) {
  failure ??= err as Error;
}
await Promise.all(inflight);
advance();

/** An argument as a shell reads it back. */
const quote = (a: string): string => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);

if (failure) {
  writeState(progress(false));
  const what = failure instanceof Stop ? failure.message : `unexpected error: ${failure.message}`;
  const args = process.argv.slice(2).filter((a) => a !== '--resume');
  const acked =
    acknowledgedLine > 0
      ? `every line up to ${acknowledgedLine} is acknowledged (${acknowledgedDocs} documents)`
      : 'no line is acknowledged yet';
  fail(
    `stopped: ${what}; ${acked}, progress in ${statePath}. ` +
      `Once fixed, resume with: npm run ingest -- ${args.map(quote).join(' ')} --resume`,
  );
}

writeState(progress(true));
draw(true);
if (tty) process.stderr.write('\n');
const secs = (performance.now() - started) / 1000;
process.stdout.write(
  `${JSON.stringify({ collection, documents: done, ...(startAfter > 0 && { resumed_after_line: startAfter }), seconds: Number(secs.toFixed(2)), docs_per_second: Number((done / secs).toFixed(1)), bytes: statSync(file).size })}\n`,
);
