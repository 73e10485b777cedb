/** The bulk-ingestion CLI against a running service. */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, ROOT, startServer, type TestServer, TINY_BERT } from './helpers.js';

const run = promisify(execFile);
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
    const { stdout, stderr } = await run(process.execPath, [
      '--import',
      'tsx',
      join(ROOT, 'tools/ingest.ts'),
      '--collection',
      'bulk',
      '--create',
      '--batch',
      '6',
      '--concurrency',
      '3',
      '--url',
      url,
      file,
    ]);
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
    await expect(
      run(process.execPath, ['--import', 'tsx', join(ROOT, 'tools/ingest.ts'), '--collection', 'bulk', '--url', url, file]),
    ).rejects.toThrow(/bad\.jsonl:2: needs text or vector/);
  });
});
