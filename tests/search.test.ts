/** Collections and /search over HTTP, with the real model and the durable store. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BertReference, cosine, postJson, putJson, readReference, startServer, type TestServer, TINY_BERT } from './helpers.js';

const ref = readReference<BertReference>(TINY_BERT);
let server: TestServer;
let url: string;

const put = (path: string, body: unknown) => putJson(`${url}${path}`, body);
const get = (path: string) => fetch(`${url}${path}`).then(async (r) => ({ status: r.status, json: (await r.json()) as any }));
const del = (path: string) =>
  fetch(`${url}${path}`, { method: 'DELETE' }).then(async (r) => ({ status: r.status, json: (await r.json()) as any }));

beforeAll(async () => {
  server = await startServer({ modelDir: TINY_BERT }, {}, { store: true });
  url = server.url;
});
afterAll(async () => server?.close());

describe('collections', () => {
  it('create is idempotent with the same settings and a conflict with others', async () => {
    const settings = { metric: 'cosine', document_prompt_name: 'passage', query_prompt_name: 'query' };
    const first = await put('/collections/docs', settings);
    expect(first.status, JSON.stringify(first.json)).toBe(200);
    expect(first.json).toMatchObject({
      name: 'docs',
      created: true,
      count: 0,
      settings: { metric: 'cosine', dimensions: 64, hnsw: { m: 16, ef_construction: 200 } },
    });
    const again = await put('/collections/docs', settings);
    expect(again.status).toBe(200);
    expect(again.json.created).toBe(false);
    const other = await put('/collections/docs', { ...settings, metric: 'ip' });
    expect(other.status).toBe(409);
    expect(other.json).toMatchObject({ error_type: 'conflict', error_code: 'COLLECTION_CONFLICT' });
  });

  it('refuses bad names and settings the model cannot honour', async () => {
    for (const name of ['..%2Fx', 'a'.repeat(65), 'sp%20ace']) expect((await put(`/collections/${name}`, {})).status).toBe(422);
    expect((await put('/collections/bad', { dimensions: 65 })).status).toBe(422);
    expect((await put('/collections/bad', { query_prompt_name: 'nope' })).json.error_code).toBe('UNKNOWN_PROMPT');
    expect((await put('/collections/bad', { layer: 9 })).status).toBe(422);
    expect((await get('/collections/bad')).status).toBe(404);
  });

  it('upserts text and vectors all or nothing, and reads them back', async () => {
    const docs = ref.sentences.map((text, i) => ({
      id: `s${i}`,
      text,
      metadata: { i, lang: i % 2 ? 'de' : 'en', nested: { tags: ['a', `t${i}`] } },
    }));
    const up = await postJson(`${url}/collections/docs/documents`, { documents: docs });
    expect(up.status).toBe(200);
    expect(up.json).toEqual({ upserted: docs.length });
    const one = await get('/collections/docs/documents/s2');
    expect(one.json).toMatchObject({ id: 's2', text: ref.sentences[2], metadata: { i: 2, lang: 'en', nested: { tags: ['a', 't2'] } } });
    expect(one.json.vector).toHaveLength(64);
    // Stored with the document prompt: equals embedding "passage: " + text.
    const direct = await postJson(`${url}/embed`, { inputs: ref.sentences[2], prompt_name: 'passage' });
    expect(cosine(one.json.vector, direct.json[0])).toBeGreaterThan(0.9999);

    const bad = await postJson(`${url}/collections/docs/documents`, { documents: [{ id: 'new1', text: 'fine' }, { id: 'new2' }] });
    expect([bad.status, bad.json.error_code]).toEqual([422, 'DOCUMENT_NEEDS_TEXT_OR_VECTOR']);
    const badVec = await postJson(`${url}/collections/docs/documents`, {
      documents: [
        { id: 'new3', text: 'fine' },
        { id: 'new4', vector: [1, 2, 3] },
      ],
    });
    expect(badVec.status).toBe(422);
    expect(badVec.json.error_code).toBe('VECTOR_LENGTH_MISMATCH');
    expect((await get('/collections/docs')).json.count).toBe(docs.length);
    expect((await get('/collections/docs/documents/new1')).json).toMatchObject({
      error_type: 'not_found',
      error_code: 'DOCUMENT_NOT_FOUND',
    });
  });

  it('searches by text with the query prompt, best first, and by vector', async () => {
    const res = await postJson(`${url}/search`, { collection: 'docs', query: ref.sentences[3], k: 3, include: ['text', 'metadata'] });
    expect(res.status).toBe(200);
    expect(res.json.results).toHaveLength(3);
    expect(res.json.results[0].id).toBe('s3');
    const scores = res.json.results.map((r: { score: number }) => r.score);
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
    expect(res.json.results[0].metadata.nested.tags).toEqual(['a', 't3']);
    const stored = (await get('/collections/docs/documents/s5')).json.vector;
    const byVector = await postJson(`${url}/search`, { collection: 'docs', vector: stored, k: 1 });
    expect(byVector.json.results[0]).toMatchObject({ id: 's5' });
    expect(byVector.json.results[0].score).toBeCloseTo(1, 5);
  });

  it('filters during the walk and still returns k matches when k exist', async () => {
    const res = await postJson(`${url}/search`, {
      collection: 'docs',
      query: 'anything',
      k: 3,
      filter: { must: [{ key: 'lang', match: { value: 'de' } }] },
    });
    expect(res.json.results).toHaveLength(3);
    for (const r of res.json.results) expect(r.metadata.lang).toBe('de');
    const range = await postJson(`${url}/search`, {
      collection: 'docs',
      query: 'x',
      k: 10,
      filter: { must: [{ key: 'i', range: { gte: 2, lt: 5 } }], must_not: [{ key: 'nested.tags', match: { value: 't3' } }] },
    });
    expect(range.json.results.map((r: { id: string }) => r.id).sort()).toEqual(['s2', 's4']);
  });

  it('422s knobs that contradict the collection, and malformed searches', async () => {
    for (const body of [
      { collection: 'docs', query: 'x', dimensions: 32 },
      { collection: 'docs', query: 'x', prompt_name: 'passage' },
      { collection: 'docs', query: 'x', instruction: 'find' },
      { collection: 'docs', query: 'x', normalize: false },
      { collection: 'docs', query: 'x', vector: [1] },
      { collection: 'docs' },
      { collection: 'docs', vector: [1, 2] },
      { collection: 'docs', query: 'x', k: 0 },
      { collection: 'docs', query: 'x', filter: { must: [{ key: 'a', range: { gt: 'high' } }] } },
      { query: 'x' },
    ]) {
      const res = await postJson(`${url}/search`, body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(res.json.error_type).toBe('validation');
    }
    const missing = await postJson(`${url}/search`, { collection: 'nope', query: 'x' });
    expect([missing.status, missing.json.error_code]).toEqual([404, 'COLLECTION_NOT_FOUND']);
  });

  it('deletes documents and collections', async () => {
    expect((await del('/collections/docs/documents/s1')).json).toEqual({ deleted: true });
    expect((await del('/collections/docs/documents/s1')).status).toBe(404);
    expect((await get('/collections/docs/documents/s1')).status).toBe(404);
    const res = await postJson(`${url}/search`, { collection: 'docs', query: ref.sentences[1], k: 20 });
    expect(res.json.results.map((r: { id: string }) => r.id)).not.toContain('s1');
    expect((await get('/collections')).json.collections.map((c: { name: string }) => c.name)).toEqual(['docs']);
    expect((await del('/collections/docs')).status).toBe(200);
    expect((await get('/collections/docs')).status).toBe(404);
  });

  it('scores negative Euclidean distance for l2 collections', async () => {
    expect((await put('/collections/l2', { metric: 'l2', dimensions: 2 })).status).toBe(200);
    const up = await postJson(`${url}/collections/l2/documents`, {
      documents: [
        { id: 'a', vector: [0, 1] },
        { id: 'b', vector: [3, 5] },
      ],
    });
    expect(up.status, JSON.stringify(up.json)).toBe(200);
    const res = await postJson(`${url}/search`, { collection: 'l2', vector: [0, 1], k: 2 });
    const got = res.json.results.map((r: { id: string; score: number }) => [r.id, r.score]);
    expect(got.map((g: [string, number]) => g[0])).toEqual(['a', 'b']);
    expect(got[0][1]).toBeCloseTo(0, 6);
    expect(got[1][1]).toBeCloseTo(-5, 5);
  });
});

describe('search v2 over HTTP: lexical, hybrid, funnel', () => {
  const texts = [
    'the quick brown fox',
    'a lazy dog sleeps',
    'foxes and dogs are animals',
    'stock markets fell today',
    'the brown dog barks',
  ];

  it('searches a lexical collection in every mode, paginates and thresholds', async () => {
    expect((await put('/collections/hyb', { lexical: { k1: 1.2, b: 0.75 } })).json.settings.lexical).toEqual({ k1: 1.2, b: 0.75 });
    const up = await postJson(`${url}/collections/hyb/documents`, {
      documents: texts.map((text, i) => ({ id: `t${i}`, text, metadata: { i } })),
    });
    expect(up.status).toBe(200);
    const lexical = await postJson(`${url}/search`, { collection: 'hyb', query: 'brown dog', mode: 'lexical', k: 10 });
    expect(lexical.status).toBe(200);
    // "brown dog" matches t4 on both words; t0 (brown) and t1 (dog) on one.
    expect(lexical.json.results[0]).toMatchObject({ id: 't4', text: texts[4] });
    expect(lexical.json.results.map((r: { id: string }) => r.id).sort()).toEqual(['t0', 't1', 't4']);
    for (const r of lexical.json.results) expect(r.lexical_score).toBe(r.score);
    const hybrid = await postJson(`${url}/search`, { collection: 'hyb', query: 'brown dog', mode: 'hybrid', k: 5, include: [] });
    expect(hybrid.status).toBe(200);
    expect(hybrid.json.results).toHaveLength(5);
    // rrf: t4 is ranked by both lists, so it has a dense and a lexical score and cannot lose to a one-list hit of equal rank.
    const t4 = hybrid.json.results.find((r: { id: string }) => r.id === 't4');
    expect(t4.dense_score).toBeTypeOf('number');
    expect(t4.lexical_score).toBeTypeOf('number');
    expect(hybrid.json.results[0].score).toBeGreaterThan(1 / 61);
    // alpha 0: the lexical order (its last hit normalizes to 0, tying with dense-only hits, so compare the top 2).
    const weighted = await postJson(`${url}/search`, {
      collection: 'hyb',
      query: 'brown dog',
      mode: 'hybrid',
      fusion: { method: 'weighted', alpha: 0 },
      k: 2,
    });
    expect(weighted.json.results.map((r: { id: string }) => r.id)).toEqual(
      lexical.json.results.slice(0, 2).map((r: { id: string }) => r.id),
    );
    const page2 = await postJson(`${url}/search`, { collection: 'hyb', query: 'brown dog', mode: 'lexical', k: 1, offset: 1 });
    expect(page2.json.results.map((r: { id: string }) => r.id)).toEqual([lexical.json.results[1].id]);
    const above = await postJson(`${url}/search`, {
      collection: 'hyb',
      query: 'brown dog',
      mode: 'lexical',
      k: 10,
      score_threshold: lexical.json.results[0].score,
    });
    expect(above.json.results.map((r: { id: string }) => r.id)).toEqual(['t4']);
    const dense = await postJson(`${url}/search`, { collection: 'hyb', query: 'brown dog', k: 2 });
    expect(dense.json.results[0].dense_score).toBeUndefined();
  });

  it('keeps full vectors of a funnel collection and rescored scores at full width', async () => {
    const made = await put('/collections/fun', { index_dimensions: 32, storage: 'float16' });
    expect(made.status).toBe(200);
    expect(made.json.settings).toMatchObject({ dimensions: 64, index_dimensions: 32, storage: 'float16' });
    await postJson(`${url}/collections/fun/documents`, { documents: texts.map((text, i) => ({ id: `t${i}`, text })) });
    const res = await postJson(`${url}/search`, { collection: 'fun', query: texts[3], k: 2, rescore: 5, include: ['vector'] });
    expect(res.status).toBe(200);
    expect(res.json.results[0].id).toBe('t3');
    expect(res.json.results[0].vector).toHaveLength(64);
    const direct = await postJson(`${url}/embed`, { inputs: texts[3] });
    // float16 keeps ~3 decimal digits: the stored vector and its score are the full-width ones within that.
    expect(res.json.results[0].score).toBeCloseTo(1, 3);
    expect(cosine(res.json.results[0].vector, direct.json[0])).toBeGreaterThan(0.9999);
  });

  it('422s every new misuse with a message', async () => {
    await put('/collections/plain2', {});
    const cases: [string, unknown, string, RegExp][] = [
      ['/search', { collection: 'plain2', query: 'x', mode: 'lexical' }, 'MODE_NEEDS_LEXICAL', /lexical index/],
      ['/search', { collection: 'plain2', query: 'x', mode: 'hybrid' }, 'MODE_NEEDS_LEXICAL', /lexical index/],
      ['/search', { collection: 'hyb', vector: new Array(64).fill(0.1), mode: 'hybrid' }, 'MODE_NEEDS_QUERY', /needs query/],
      ['/search', { collection: 'hyb', query: 'x', mode: 'semantic' }, 'REQUEST_VALIDATION', /mode/],
      ['/search', { collection: 'hyb', query: 'x', fusion: { method: 'rrf' } }, 'INVALID_COLLECTION_INPUT', /fusion applies/],
      ['/search', { collection: 'hyb', query: 'x', mode: 'hybrid', fusion: { method: 'max' } }, 'REQUEST_VALIDATION', /method/],
      [
        '/search',
        { collection: 'hyb', query: 'x', mode: 'hybrid', fusion: { method: 'weighted', alpha: 1.5 } },
        'REQUEST_VALIDATION',
        /alpha/,
      ],
      ['/search', { collection: 'hyb', query: 'x', offset: -1 }, 'REQUEST_VALIDATION', /offset/],
      ['/search', { collection: 'hyb', query: 'x', score_threshold: 'high' }, 'REQUEST_VALIDATION', /score_threshold/],
      ['/search', { collection: 'plain2', query: 'x', rescore: 10 }, 'INVALID_COLLECTION_INPUT', /index_dimensions/],
      ['/search', { collection: 'hyb', query: 'x', mode: 'lexical', rescore: 10 }, 'INVALID_COLLECTION_INPUT', /rescore/],
      ['/search', { query: 'x', candidates: ['a'], mode: 'hybrid' }, 'COLLECTION_ONLY_FIELD', /collection search only/],
    ];
    for (const [path, body, code, msg] of cases) {
      const r = await postJson(`${url}${path}`, body);
      expect(r.status, JSON.stringify(body)).toBe(422);
      expect(r.json.error_type).toBe('validation');
      expect(r.json.error_code, JSON.stringify(body)).toBe(code);
      expect(r.json.error, JSON.stringify(body)).toMatch(msg);
    }
    const creates: [unknown, string, RegExp][] = [
      [{ storage: 'int8' }, 'INVALID_COLLECTION_INPUT', /index_dimensions/],
      [{ index_dimensions: 128 }, 'INDEX_DIMENSIONS_TOO_LARGE', /index_dimensions/],
      [{ index_dimensions: 32, storage: 'int4' }, 'REQUEST_VALIDATION', /storage/],
      [{ lexical: { k1: -1 } }, 'INVALID_COLLECTION_INPUT', /k1/],
      [{ lexical: { b: 2 } }, 'INVALID_COLLECTION_INPUT', /\bb\b/],
      [{ lexical: 'yes' }, 'REQUEST_VALIDATION', /lexical/],
    ];
    for (const [body, code, msg] of creates) {
      const r = await put('/collections/bad2', body);
      expect(r.status, JSON.stringify(body)).toBe(422);
      expect(r.json.error_code, JSON.stringify(body)).toBe(code);
      expect(r.json.error, JSON.stringify(body)).toMatch(msg);
    }
    await put('/collections/f16', { metric: 'ip', index_dimensions: 32, storage: 'float16' });
    const big = await postJson(`${url}/collections/f16/documents`, { documents: [{ id: 'x', vector: [70000, ...new Array(63).fill(0)] }] });
    expect(big.status).toBe(422);
    expect(big.json.error_code).toBe('INVALID_COLLECTION_INPUT');
    expect(big.json.error).toMatch(/float16/);
    expect((await put('/collections/hyb', { lexical: true })).status).toBe(409);
  });
});

describe('query against inline candidates', () => {
  it('ranks an exact duplicate first and names candidates by position', async () => {
    const candidates = [ref.sentences[0], ref.sentences[4], ref.sentences[6], ref.sentences[1]];
    const res = await postJson(`${url}/search`, { query: ref.sentences[6], candidates, k: 2 });
    expect(res.status).toBe(200);
    expect(res.json.results).toHaveLength(2);
    expect(res.json.results[0]).toMatchObject({ id: '2', text: ref.sentences[6] });
    expect(res.json.results[0].score).toBeCloseTo(1, 5);
    expect(res.json.results[0].score).toBeGreaterThan(res.json.results[1].score);
  });

  it('applies query and document prompts separately', async () => {
    const res = await postJson(`${url}/search`, {
      query: 'the cat',
      candidates: ['the cat', 'a dog'],
      query_prompt_name: 'query',
      document_prompt_name: 'passage',
      k: 2,
    });
    const q = await postJson(`${url}/embed`, { inputs: 'the cat', prompt_name: 'query' });
    const d = await postJson(`${url}/embed`, { inputs: 'the cat', prompt_name: 'passage' });
    const expected = cosine(q.json[0], d.json[0]);
    expect(res.json.results.find((r: { id: string }) => r.id === '0').score).toBeCloseTo(expected, 5);
    expect(expected).toBeLessThan(0.9999);
  });
});
