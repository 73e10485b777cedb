/**
 * Regression tests for the hostile-client and fault run (issue 13). Every attack runs against a
 * server the test starts on 127.0.0.1, bounded in sockets and time.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CollectionStore } from '../src/index/index.js';
import { Engine } from '../src/runtime/engine.js';
import { type AppOptions, buildApp } from '../src/server/app.js';
import { nestingBeyond, redactUrl } from '../src/server/http-guard.js';
import { postJson, putJson, startServerProcess, TINY_BERT } from './helpers.js';

let engine: Engine;
const apps: FastifyInstance[] = [];
beforeAll(async () => {
  engine = await Engine.load({ modelDir: TINY_BERT, workers: 1, intraOpThreads: 1 });
  await engine.warmUp();
});
afterAll(async () => {
  for (const a of apps) await a.close();
  await engine?.close();
});

async function serve(options: Omit<AppOptions, 'embedder'> = {}): Promise<{ url: string; port: number; app: FastifyInstance }> {
  const app = await buildApp({ embedder: engine, ...options });
  apps.push(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return { url: `http://127.0.0.1:${port}`, port, app };
}

/** Sends raw bytes on a fresh connection and resolves with everything the server wrote before closing. */
function rawExchange(port: number, data: string | Buffer, opts: { timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(got);
    }, opts.timeoutMs ?? 5000);
    socket.on('data', (d) => (got += d.toString('latin1')));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      if (got) resolve(got);
      else reject(err);
    });
    socket.write(data);
  });
}

function parseRaw(response: string): { status: number; headers: string; body: any } {
  const [head = '', ...rest] = response.split('\r\n\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
  return { status, headers: head.toLowerCase(), body: JSON.parse(rest.join('\r\n\r\n') || 'null') };
}

describe('prompt names are own properties only (point 5)', () => {
  it('refuses prototype names on every route, and in collection settings', async () => {
    const { url } = await serve({ store: await CollectionStore.open(mkdtempSync(join(tmpdir(), 'harden-'))) });
    expect((await postJson(`${url}/embed`, { inputs: 'hello', prompt_name: 'query' })).status).toBe(200);
    for (const name of ['constructor', '__proto__', 'toString', 'valueOf', 'hasOwnProperty']) {
      const embed = await postJson(`${url}/embed`, { inputs: 'hello', prompt_name: name });
      expect(embed.status, name).toBe(422);
      expect(embed.json.error_code).toBe('UNKNOWN_PROMPT');
      expect((await postJson(`${url}/v1/embeddings`, { input: 'hello', model: 'x', prompt_name: name })).status, name).toBe(422);
      expect((await postJson(`${url}/search`, { query: 'a', candidates: ['b'], query_prompt_name: name })).status, name).toBe(422);
      const put = await putJson(`${url}/collections/c`, { document_prompt_name: name });
      expect(put.status, name).toBe(422);
    }
  });
});

describe('vectors whose scores cannot be represented (point 7)', () => {
  it('are refused with 422 wherever vectors enter, and scores stay numbers', async () => {
    const { url } = await serve({ store: await CollectionStore.open(mkdtempSync(join(tmpdir(), 'harden-'))) });
    const dims = 4;
    for (const metric of ['l2', 'ip']) {
      const put = await putJson(`${url}/collections/${metric}`, { metric, dimensions: dims });
      expect(put.status).toBeLessThan(300);
      const huge = [1e38, 1e38, 0, 0];
      const up = await postJson(`${url}/collections/${metric}/documents`, { documents: [{ id: 'huge', vector: huge }] });
      expect(up.status).toBe(422);
      expect(up.json.error).toMatch(/norm .* cannot be represented/);
      expect((await postJson(`${url}/search`, { collection: metric, vector: huge })).status).toBe(422);
      // Large but representable: stored, and every score is a finite number (never null).
      const big = [1e18, -1e18, 5e17, 0];
      expect(
        (
          await postJson(`${url}/collections/${metric}/documents`, {
            documents: [
              { id: 'big', vector: big },
              { id: 'small', vector: [1, 2, 3, 4] },
            ],
          })
        ).status,
      ).toBe(200);
      const found = await postJson(`${url}/search`, { collection: metric, vector: [-1e18, 1e18, -5e17, 0], k: 2 });
      expect(found.status).toBe(200);
      for (const hit of found.json.results) expect(Number.isFinite(hit.score), JSON.stringify(hit)).toBe(true);
    }
  });
});

describe('JSON nesting is bounded before parsing (point 11)', () => {
  it('refuses a deeply nested ignored field with 422, on every route, and accepts ordinary depth', async () => {
    const { url } = await serve({ store: await CollectionStore.open(mkdtempSync(join(tmpdir(), 'harden-'))) });
    const deep = `{"inputs": "a", "ignored": ${'['.repeat(200_000)}${']'.repeat(200_000)}}`;
    for (const route of ['/embed', '/v1/embeddings', '/search', '/collections/x/documents']) {
      const res = await postJson(`${url}${route}`, deep);
      expect(res.status, route).toBe(422);
      expect(JSON.stringify(res.json), route).toMatch(/nests deeper than 64 levels/);
      if (!route.startsWith('/v1/')) expect(res.json.error_code, route).toBe('JSON_TOO_DEEP');
    }
    expect(res2xx(await postJson(`${url}/embed`, `{"inputs": "a", "ignored": ${'['.repeat(60)}${']'.repeat(60)}}`))).toBe(true);
  });

  it('counts brackets outside strings only', () => {
    expect(nestingBeyond('{"a": "[[[[[[", "b": [[1]]}', 3)).toBe(-1);
    expect(nestingBeyond('{"a": "\\"[[[[", "b": [[[1]]]}', 3)).toBe(23);
  });

  it('names a __proto__ key instead of calling the body invalid JSON (point 13)', async () => {
    const { url } = await serve();
    const res = await postJson(`${url}/embed`, '{"inputs": "a", "options": {"__proto__": {"x": 1}}}');
    expect(res.status).toBe(422);
    expect(res.json.error).toBe('body.options.__proto__ is a "__proto__" key, which is not accepted anywhere');
  });
});

/** The status of a GET, its body read to the end (an unread body keeps the connection, and app.close, waiting). */
async function statusOf(url: string, init?: RequestInit): Promise<number> {
  const res = await fetch(url, init);
  await res.arrayBuffer();
  return res.status;
}

function res2xx(r: { status: number }): boolean {
  return r.status >= 200 && r.status < 300;
}

describe('credentials in query strings are not logged (point 12)', () => {
  it('redacts api_key and friends from every logged URL', async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const { url } = await serve({ apiKeys: ['k1-secret'], logger: { level: 'info', stream } as never });
    expect((await fetch(`${url}/info?api_key=k1-secret`)).status).toBe(401);
    expect((await fetch(`${url}/info?x=1&access_token=k1-secret&Key=k1-secret`)).status).toBe(401);
    expect(lines.length).toBeGreaterThan(2);
    expect(lines.join('')).not.toContain('k1-secret');
    expect(lines.join('')).toContain('/info?api_key=[REDACTED]');
    expect(redactUrl('/a?x=1&password=p&b=2')).toBe('/a?x=1&password=[REDACTED]&b=2');
  });
});

describe("errors Node and Fastify raise themselves have the contract's shape (point 8)", () => {
  it('bad percent-encoding, a negative content-length, oversized headers', async () => {
    const { port } = await serve();
    const badUrl = parseRaw(await rawExchange(port, 'GET /collections/%E0%A4%A HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 2000 }));
    expect(badUrl.status).toBe(422);
    expect(badUrl.body).toEqual({ error: 'the URL is not valid (bad percent-encoding)', error_type: 'validation', error_code: 'BAD_URL' });

    for (const path of ['/embed', '/v1/embeddings']) {
      const neg = parseRaw(
        await rawExchange(port, `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: -1\r\n\r\n{}`),
      );
      expect(neg.status, path).toBe(422);
      if (path.startsWith('/v1/')) expect(neg.body.error.code).toBe('validation');
      else
        expect(neg.body).toEqual({
          error: 'the content-length header is invalid',
          error_type: 'validation',
          error_code: 'INVALID_CONTENT_LENGTH',
        });
    }
    const big = parseRaw(await rawExchange(port, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`));
    expect(big.status).toBe(413);
    expect(big.body).toMatchObject({ error_type: 'payload_too_large', error_code: 'HEADERS_TOO_LARGE' });
  });

  it('a request on a kept-alive connection after shutdown began gets 503 with Retry-After', async () => {
    const app = await buildApp({ embedder: engine });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    const socket = connect(port, '127.0.0.1');
    let got = '';
    socket.on('data', (d) => (got += d.toString('latin1')));
    socket.on('error', () => undefined);
    await new Promise((r) => socket.once('connect', r));
    // The connection is busy (a body still arriving) when shutdown begins, so it is not closed as idle.
    const body = '{"inputs": "hello"}';
    socket.write(`POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n{`);
    await new Promise((r) => setTimeout(r, 100));
    const closed = app.close();
    await new Promise((r) => setTimeout(r, 50));
    socket.write(`${body.slice(1)}GET /info HTTP/1.1\r\nHost: x\r\n\r\n`);
    for (let i = 0; i < 200 && (got.match(/HTTP\/1\.1/g) ?? []).length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    const responses = got.split(/(?=HTTP\/1\.1 )/);
    expect(responses[0]).toMatch(/^HTTP\/1\.1 200/);
    const during = parseRaw(responses[1] ?? '');
    expect(during.status).toBe(503);
    expect(during.headers).toMatch(/retry-after: 1/);
    expect(during.headers).toMatch(/connection: close/);
    expect(during.body.error_type).toBe('unavailable');
    socket.destroy();
    await closed;
  });
});

describe('damaged collections (point 4)', () => {
  it('serve everything else; the damaged one answers 503 with the reason and is listed in /ready and /info', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'harden-'));
    const first = await CollectionStore.open(dir);
    await first.create('good', { dimensions: 32 });
    await first.create('bad', { dimensions: 32 });
    await first.close();
    writeFileSync(join(dir, 'collections', 'bad', 'settings.json'), '{"format": 1, "settings": ');
    const { url } = await serve({ store: await CollectionStore.open(dir) });
    const ready = await fetch(`${url}/ready`);
    expect(ready.status).toBe(200);
    const body = (await ready.json()) as { unavailable_collections: { name: string; reason: string }[] };
    expect(body.unavailable_collections).toEqual([{ name: 'bad', reason: expect.stringMatching(/settings\.json/) }]);
    const info = (await (await fetch(`${url}/info`)).json()) as { unavailable_collections: unknown[] };
    expect(info.unavailable_collections).toEqual(body.unavailable_collections);
    const bad = await fetch(`${url}/collections/bad`);
    expect(bad.status).toBe(503);
    expect(bad.headers.get('retry-after')).not.toBeNull();
    expect(await bad.json()).toMatchObject({
      error: expect.stringMatching(/collection bad is unavailable: .*settings\.json/),
      error_code: 'COLLECTION_UNAVAILABLE',
    });
    expect((await postJson(`${url}/search`, { collection: 'bad', query: 'x' })).status).toBe(503);
    expect((await postJson(`${url}/collections/good/documents`, { documents: [{ id: '1', text: 'hello' }] })).status).toBe(200);
    expect((await postJson(`${url}/search`, { collection: 'good', query: 'hello' })).json.results[0].id).toBe('1');
    expect((await postJson(`${url}/embed`, { inputs: 'still serving' })).status).toBe(200);
  });
});

// --- Attacks on a whole server process -----------------------------------------------------------

async function health(port: number): Promise<number> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(3000) })).status;
  } catch {
    return 0;
  }
}

describe('damage in the middle of a log, through the service (point 3)', () => {
  it('after SIGKILL and 4 flipped bytes mid-log, restarts serving every record that verifies and reports what was lost', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'harden-wal-'));
    let server = await startServerProcess({ DATA_DIR: dataDir });
    try {
      const put = await putJson(`${server.url}/collections/c`, '{"dimensions": 4}');
      expect(put.status).toBe(200);
      // One acknowledged log record per request.
      for (let i = 0; i < 40; i++) {
        const res = await postJson(`${server.url}/collections/c/documents`, { documents: [{ id: `d${i}`, vector: [i + 1, 1, 0, 0] }] });
        expect(res.status).toBe(200);
      }
      server.child.kill('SIGKILL');
      await server.exited;

      const dir = join(dataDir, 'collections', 'c');
      const wal = readdirSync(dir).filter((f) => /^wal-\d+\.log$/.test(f));
      expect(wal).toHaveLength(1);
      const file = join(dir, wal[0]!);
      const buf = readFileSync(file);
      let off = 16; // the segment header, then frames of 8 + length bytes
      for (let r = 0; r < 20; r++) off += 8 + buf.readUInt32LE(off);
      for (let i = 0; i < 4; i++) buf[off + 40 + i] = buf[off + 40 + i]! ^ 0xff;
      writeFileSync(file, buf);

      server = await startServerProcess({ DATA_DIR: dataDir });
      expect((await fetch(`${server.url}/ready`)).status).toBe(200);
      const info = (await (await fetch(`${server.url}/collections/c`)).json()) as { count: number };
      expect(info.count).toBe(39); // before the fix: 20, every record after the damage dropped
      expect((await fetch(`${server.url}/collections/c/documents/d20`)).status).toBe(404);
      for (const id of ['d0', 'd19', 'd21', 'd39'])
        expect((await fetch(`${server.url}/collections/c/documents/${id}`)).status, id).toBe(200);
      const recovered = ((await (await fetch(`${server.url}/info`)).json()) as { recovered_collections: any[] }).recovered_collections;
      expect(recovered).toEqual([
        { name: 'c', recovery: expect.objectContaining({ damage: 1, lostLsns: [[expect.any(Number), expect.any(Number)]] }) },
      ]);
      expect(server.output()).toMatch(/1 acknowledged record\(s\) could not be recovered/);
      expect(readdirSync(dir).some((f) => f.includes('.damaged-'))).toBe(true);
    } finally {
      server.child.kill('SIGKILL');
      await server.exited;
    }
  }, 120_000);
});

describe('file-descriptor exhaustion (point 1)', () => {
  it('survives more idle and slow sockets than it has descriptors, and cuts slow headers and bodies', async () => {
    // 300 descriptors for the whole process; the attack opens 360 sockets.
    const server = await startServerProcess({ HEADERS_TIMEOUT_MS: '1500', REQUEST_READ_TIMEOUT_MS: '3000' }, 300);
    const sockets: Socket[] = [];
    const answers: string[] = [];
    try {
      expect(server.output()).not.toMatch(/EMFILE/);
      const open = (payload: string): Socket => {
        const s = connect(server.port, '127.0.0.1');
        const i = answers.push('') - 1;
        s.on('data', (d) => (answers[i] += d.toString('latin1')));
        s.on('error', () => undefined);
        s.write(payload);
        sockets.push(s);
        return s;
      };
      for (let i = 0; i < 300; i++) open('POST /embed HTTP/1.1\r\nHost: x\r\n');
      for (let i = 0; i < 20; i++)
        open('POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{');
      const chunked = Array.from({ length: 20 }, () =>
        open('POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n'),
      );
      const trickle = setInterval(() => chunked.forEach((s) => s.writable && s.write('1\r\n \r\n')), 500);
      for (let i = 0; i < 20; i++) open('');
      await new Promise((r) => setTimeout(r, 1000));
      // Over the cap: refused at once with the contract's 503.
      const refused = answers.filter((a) => a.startsWith('HTTP/1.1 503'));
      expect(refused.length).toBeGreaterThan(0);
      expect(parseRaw(refused[0]!).body).toMatchObject({ error_type: 'unavailable', error_code: 'CONNECTION_LIMIT' });
      // Slow headers, slow bodies and trickled chunks are all cut by the read timeouts.
      await new Promise((r) => setTimeout(r, 5000));
      clearInterval(trickle);
      expect(server.child.exitCode).toBeNull();
      const closed = sockets.filter((s) => s.destroyed || s.readableEnded).length;
      expect(closed).toBe(sockets.length);
      const timedOut = answers.filter((a) => a.startsWith('HTTP/1.1 422'));
      expect(timedOut.length).toBeGreaterThan(0);
      expect(parseRaw(timedOut[0]!).body.error_code).toBe('REQUEST_READ_TIMEOUT');
      expect(await health(server.port)).toBe(200);
      expect(server.output()).not.toMatch(/EMFILE|uncaught/i);
    } finally {
      sockets.forEach((s) => s.destroy());
      server.child.kill('SIGKILL');
      await server.exited;
    }
  }, 60_000);
});

describe('shutdown (point 9)', () => {
  it('exits 0 within SHUTDOWN_TIMEOUT_MS although a client never finishes its body', async () => {
    const server = await startServerProcess({ SHUTDOWN_TIMEOUT_MS: '2000' });
    const s = connect(server.port, '127.0.0.1');
    s.on('error', () => undefined);
    s.write('POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"inputs"');
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    server.child.kill('SIGTERM');
    const code = await server.exited;
    const took = Date.now() - t0;
    s.destroy();
    expect(code).toBe(0);
    expect(took).toBeLessThan(2000 + 1500);
  }, 60_000);
});

describe('smaller contract holes (point 13)', () => {
  it('names the array element of the wrong type', async () => {
    const { url } = await serve({ store: await CollectionStore.open(mkdtempSync(join(tmpdir(), 'harden-'))) });
    const res = await postJson(`${url}/embed`, { inputs: ['a', 5] });
    expect(res.status).toBe(422);
    expect(res.json.error).toBe('body.inputs[1] must be string');
    expect((await postJson(`${url}/embed`, { inputs: 5 })).json.error).toBe('body.inputs must be string or array');
    // The same on the OpenAI route (its shape, with the element as the message) and in nested arrays.
    const v1 = await postJson(`${url}/v1/embeddings`, { input: ['a', 'b', null], model: 'x' });
    expect(v1.status).toBe(422);
    expect(v1.json.error.message).toBe('body.input[2] must be string');
    expect(v1.json.error.param).toBe('input');
    const search = await postJson(`${url}/search`, { query: 'a', candidates: ['b', 7] });
    expect(search.status).toBe(422);
    expect(search.json.error).toBe('body.candidates[1] must be string');
  });

  it('makes /docs public with everything under it when listed, and nothing else', async () => {
    const { url } = await serve({ apiKeys: ['k1'], publicRoutes: ['/health', '/docs'] });
    expect(await statusOf(`${url}/docs/json`)).toBe(200);
    expect(await statusOf(`${url}/docs/yaml`)).toBe(200);
    expect(await statusOf(`${url}/docs`, { redirect: 'manual' })).toBeLessThan(400);
    const page = await fetch(`${url}/docs/static/index.html`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/swagger/i);
    const bundle = await fetch(`${url}/docs/static/swagger-ui-bundle.js`);
    expect(bundle.status).toBe(200);
    await bundle.arrayBuffer();
    expect(await statusOf(`${url}/info`)).toBe(401);
    expect(await statusOf(`${url}/openapi.json`)).toBe(401);
    // A prefix covers what is under it, not every path that starts with the same letters.
    expect(await statusOf(`${url}/docsx`)).toBe(401);
    // Without publicRoutes the docs need a key like everything else but the marked routes.
    const closed = await serve({ apiKeys: ['k1'] });
    expect(await statusOf(`${closed.url}/docs/json`)).toBe(401);
    expect(await statusOf(`${closed.url}/docs/static/index.html`)).toBe(401);
    expect(await statusOf(`${closed.url}/docs/json`, { headers: { authorization: 'Bearer k1' } })).toBe(200);
    expect(await statusOf(`${closed.url}/health`)).toBe(200);
  });

  it('refuses a "__proto__" key by name on every route, and accepts the word as data', async () => {
    const { url } = await serve({ store: await CollectionStore.open(mkdtempSync(join(tmpdir(), 'harden-'))) });
    const proto = '{"inputs": "a", "options": {"__proto__": {"x": 1}}}';
    const embed = await postJson(`${url}/embed`, proto);
    expect(embed.status).toBe(422);
    expect(embed.json).toMatchObject({ error_type: 'validation', error_code: 'PROTO_KEY' });
    expect(embed.json.error).not.toMatch(/not valid JSON/);
    const v1 = await postJson(`${url}/v1/embeddings`, '{"input": "a", "__proto__": {"model": "x"}}');
    expect(v1.status).toBe(422);
    expect(v1.json.error.message).toBe('body.__proto__ is a "__proto__" key, which is not accepted anywhere');
    const put = await putJson(`${url}/collections/docs`, '{}');
    expect(put.status).toBeLessThan(300);
    const upsert = await postJson(
      `${url}/collections/docs/documents`,
      '{"documents": [{"id": "1", "text": "a", "metadata": {"ok": 1}}, {"id": "2", "text": "b", "metadata": {"__proto__": {"admin": true}}}]}',
    );
    expect(upsert.status).toBe(422);
    expect(upsert.json.error).toBe('body.documents[1].metadata.__proto__ is a "__proto__" key, which is not accepted anywhere');
    expect((await fetch(`${url}/collections/docs`).then((r) => r.json() as Promise<{ count: number }>)).count).toBe(0); // all or nothing
    // The word itself is ordinary data: as text, as an id, as a metadata value, as an unknown field's value.
    expect((await postJson(`${url}/embed`, { inputs: ['__proto__', 'constructor'], note: '__proto__' })).status).toBe(200);
    const fine = await postJson(`${url}/collections/docs/documents`, {
      documents: [{ id: '__proto__', text: '__proto__', metadata: { key: '__proto__', constructor: 'x' } }],
    });
    expect(fine.status).toBe(200);
    const got = await fetch(`${url}/collections/docs/documents/__proto__`).then((r) => r.json() as Promise<unknown>);
    expect(got).toMatchObject({ id: '__proto__', metadata: { key: '__proto__', constructor: 'x' } });
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  it('keeps collection names unique regardless of case and refuses Windows device names', async () => {
    const store = await CollectionStore.open(mkdtempSync(join(tmpdir(), 'harden-')));
    await store.create('notes', { dimensions: 4 });
    await expect(store.create('Notes', { dimensions: 4 })).rejects.toThrow(
      /collection notes already exists; names must differ in more than letter case/,
    );
    for (const name of ['CON', 'nul', 'Com1', 'lpt9', 'aux']) {
      await expect(store.create(name, { dimensions: 4 })).rejects.toThrow(/reserved device name/);
    }
    await expect(store.create('console', { dimensions: 4 })).resolves.toMatchObject({ created: true });
    await store.close();
  });

  it('answers a name that differs only in case with 409, and a device name with 422, over HTTP', async () => {
    const { url } = await serve({ store: await CollectionStore.open(mkdtempSync(join(tmpdir(), 'harden-'))) });
    const put = (name: string) => putJson(`${url}/collections/${name}`, '{"dimensions": 4}');
    expect((await put('a')).status).toBe(200);
    expect((await put('a')).status).toBe(200); // the same PUT again is a no-op
    const upper = await put('A');
    expect(upper.status).toBe(409);
    expect(upper.json).toMatchObject({ error_type: 'conflict', error_code: 'COLLECTION_CONFLICT' });
    expect(upper.json.error).toMatch(/collection a already exists; names must differ in more than letter case/);
    for (const name of ['CON', 'nul', 'Lpt1']) {
      const r = await put(name);
      expect(r.status, name).toBe(422);
      expect(r.json.error_code, name).toBe('INVALID_COLLECTION_INPUT');
      expect(r.json.error, name).toMatch(/reserved device name/);
    }
    const names = (await fetch(`${url}/collections`).then((r) => r.json())) as any;
    expect(JSON.stringify(names)).not.toMatch(/"A"|CON|nul/);
  });
});
