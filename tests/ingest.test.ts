/** The bulk-ingestion CLI against a running service. */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, ROOT, startServer, startServerProcess, type TestServer, TINY_BERT } from './helpers.js';

const run = promisify(execFile);
/** The CLI as `npm run ingest` starts it. */
const INGEST = ['--import', 'tsx', join(ROOT, 'tools/ingest.ts')];
const ingest = (args: string[]) => run(process.execPath, [...INGEST, ...args]);
let server: TestServer;
let url: string;

beforeAll(async () => {
  // A queue of 8 inputs makes the CLI meet 429s and retry them.
  server = await startServer({ modelDir: TINY_BERT, limits: { maxQueueInputs: 8 } }, {}, { store: true });
  url = server.url;
});
afterAll(async () => server?.close());

describe('npm run ingest', () => {
  it('streams a JSONL file into a collection, retrying refusals, and reports progress', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'jsonl-')), 'docs.jsonl');
    const lines = Array.from({ length: 50 }, (_, i) =>
      JSON.stringify({ _id: `doc-${i}`, title: '', text: `the number ${i} is here`, metadata: { i } }),
    );
    writeFileSync(file, `${lines.join('\n')}\n`);
    const { stdout, stderr } = await ingest(['--collection', 'bulk', '--create', '--batch', '6', '--concurrency', '3', '--url', url, file]);
    expect(JSON.parse(stdout)).toMatchObject({ collection: 'bulk', documents: 50 });
    expect(stderr).toMatch(/50\/50 docs\s+[\d.]+ docs\/s\s+ETA 0s/);
    const info = (await (await fetch(`${url}/collections/bulk`)).json()) as { count: number };
    expect(info.count).toBe(50);
    const res = await postJson(`${url}/search`, { collection: 'bulk', query: 'the number 17 is here', k: 1 });
    expect(res.json.results[0].id).toBe('doc-17');
    expect(res.json.results[0].metadata).toEqual({ i: 17 });
  });

  it('stops with a message naming the bad line', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'jsonl-')), 'bad.jsonl');
    writeFileSync(file, '{"id": "a", "text": "fine"}\n{"id": "b"}\n');
    await expect(ingest(['--collection', 'bulk', '--url', url, file])).rejects.toThrow(/bad\.jsonl:2: needs text or vector/);
  });

  it('stops with one line naming the bad line and the resume point, and writes no stack', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jsonl-'));
    const file = join(dir, 'half.jsonl');
    const good = Array.from({ length: 12 }, (_, i) => JSON.stringify({ id: `h-${i}`, text: `half ${i}` }));
    writeFileSync(file, `${[...good, '{"id": "x", "text": "   "}', '{"id": "y", "text": "after"}'].join('\n')}\n`);
    const err = (await ingest(['--collection', 'half', '--create', '--batch', '4', '--concurrency', '1', '--url', url, file]).catch(
      (e: unknown) => e,
    )) as { code: number; stderr: string };
    expect(err.code).toBe(1);
    const lines = err.stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('ingest:'));
    expect(lines).toHaveLength(1);
    // The service's EMPTY_INPUT names documents[0] of the last batch: the tool says which line that is.
    expect(lines[0]).toMatch(
      /^ingest: stopped: the service refused lines 13-14: 422 EMPTY_INPUT: text on line 13 has no text the model can read/,
    );
    expect(lines[0]).toMatch(/every line up to 12 is acknowledged \(12 documents\)/);
    expect(err.stderr).not.toMatch(/\n\s+at /);
    expect(JSON.parse(readFileSync(`${file}.ingest-half.json`, 'utf8'))).toMatchObject({ line: 12, documents: 12, complete: false });
  });
});

describe('npm run ingest when the server dies mid-run', () => {
  it('says in one line what failed and where to resume; --resume finishes with every line acknowledged', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ingest-data-'));
    const dir = mkdtempSync(join(tmpdir(), 'jsonl-'));
    const file = join(dir, 'docs.jsonl');
    const N = 1500;
    const lines = Array.from({ length: N }, (_, i) => JSON.stringify({ id: `d-${i + 1}`, text: `document number ${i + 1} of the run` }));
    lines.splice(700, 0, ''); // a blank line is skipped, and still counts as a line
    writeFileSync(file, `${lines.join('\n')}\n`);
    const state = join(dir, 'progress.json');
    const args = [...INGEST, '--collection', 'bulk', '--create', '--batch', '5', '--concurrency', '2'];

    let server = await startServerProcess({ DATA_DIR: dataDir });
    let stderr = '';
    const cli = spawn(process.execPath, [...args, '--state', state, '--url', server.url, file], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cli.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exit = new Promise<number | null>((r) => cli.once('exit', (code) => r(code)));
    // Kill the server once some batches are acknowledged (the state file says so), mid-run.
    for (let i = 0; i < 600; i++) {
      if (existsSync(state) && (JSON.parse(readFileSync(state, 'utf8')) as { line: number }).line >= 100) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    server.child.kill('SIGKILL');
    await server.exited;
    expect(await exit).toBe(1);
    const said = stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('ingest:'));
    expect(said, stderr).toHaveLength(1);
    expect(said[0]).toMatch(
      /^ingest: stopped: (the server at http:\/\/127\.0\.0\.1:\d+ closed the connection \(\w+\)|nothing is listening at http:\/\/127\.0\.0\.1:\d+ \(connection refused\)) while upserting lines \d+-\d+; every line up to (\d+) is acknowledged \((\d+) documents\), progress in .*progress\.json\. Once fixed, resume with: npm run ingest -- .* --resume$/,
    );
    expect(stderr).not.toMatch(/undici|TypeError|\n\s+at /);
    const stopped = JSON.parse(readFileSync(state, 'utf8')) as { line: number; documents: number; complete: boolean };
    expect(stopped.complete).toBe(false);
    expect(stopped.line).toBeGreaterThanOrEqual(100);
    expect(stopped.line).toBeLessThan(N);
    expect(said[0]).toContain(`every line up to ${stopped.line} is acknowledged (${stopped.documents} documents)`);
    expect(stopped.documents).toBe(stopped.line > 700 ? stopped.line - 1 : stopped.line);

    // Restarted on the same data: everything acknowledged is there; --resume sends the rest.
    server = await startServerProcess({ DATA_DIR: dataDir });
    try {
      for (const n of [1, Math.floor(stopped.line / 2), stopped.line > 700 ? stopped.line - 1 : stopped.line]) {
        expect((await fetch(`${server.url}/collections/bulk/documents/d-${n}`)).status, `d-${n}`).toBe(200);
      }
      const { stdout, stderr: resumed } = await run(process.execPath, [...args, '--state', state, '--url', server.url, file, '--resume']);
      expect(resumed).toContain(`ingest: resuming after line ${stopped.line}`);
      const summary = JSON.parse(stdout) as { documents: number; resumed_after_line: number };
      expect(summary.resumed_after_line).toBe(stopped.line);
      expect(summary.documents).toBe(N - stopped.documents);
      const info = (await (await fetch(`${server.url}/collections/bulk`)).json()) as { count: number };
      expect(info.count).toBe(N);
      expect(JSON.parse(readFileSync(state, 'utf8'))).toMatchObject({ line: N + 1, documents: N, complete: true });
      const again = await run(process.execPath, [...args, '--state', state, '--url', server.url, file, '--resume']);
      expect(again.stderr).toMatch(/nothing to resume: .* was fully ingested into bulk \(1500 documents\)/);
    } finally {
      server.child.kill('SIGKILL');
      await server.exited;
    }
  }, 180_000);
});
