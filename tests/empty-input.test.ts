/**
 * Inputs with nothing the model can read (issue 13, point 13): empty, whitespace only, invisible
 * format characters, unpaired surrogates, or only characters the tokenizer drops. One behaviour on
 * every route that embeds or reranks: 422 EMPTY_INPUT naming the input by the request's own field,
 * never a 200 with a vector that carries nothing of the text (all zeros under mean pooling without
 * the special tokens, which makes cosine undefined downstream).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntimeError } from '../src/runtime/errors.js';
import type { Models } from '../src/runtime/models.js';
import { postJson, putJson, startModelsServer, type TestServer, TINY_BERT, TINY_RERANKER } from './helpers.js';

/** Blank for any model; the last two are kept by no BERT normalizer (U+FFFD, a lone combining accent). */
const BLANK = ['', '   ', '\t\n\r', '\u200b', '\ufeff\u2060', '\ud800', '\udc00 \u3000', ' \u00a0\u2028'];
const DROPPED = ['\ufffd', '\u0301'];
const NOTHING = [...BLANK, ...DROPPED];

let server: TestServer & { models: Models };
let url: string;

beforeAll(async () => {
  server = await startModelsServer(
    [
      { name: 'embed', dir: TINY_BERT },
      { name: 'rerank', dir: TINY_RERANKER },
    ],
    {},
    {},
    { store: true },
  );
  url = server.url;
  const put = (name: string, body: unknown) => putJson(`${url}/collections/${name}`, body);
  expect((await put('plain', {})).status).toBeLessThan(300);
  expect((await put('words', { lexical: true })).status).toBeLessThan(300);
}, 120_000);
afterAll(async () => {
  await server?.close();
});

/** Asserts the service's 422 EMPTY_INPUT naming `name`. */
function expectEmpty(res: { status: number; json: any }, name: string, what: string): void {
  expect(res.status, `${what}: ${JSON.stringify(res.json)}`).toBe(422);
  expect(res.json.error_type, what).toBe('validation');
  expect(res.json.error_code, what).toBe('EMPTY_INPUT');
  expect(res.json.error, what).toMatch(new RegExp(`^${name.replace(/[[\].]/g, '\\$&')} has no text the model can read`));
}

/** The same in OpenAI's error shape (/v1 routes). */
function expectOpenAiEmpty(res: { status: number; json: any }, name: string, param: string, what: string): void {
  expect(res.status, `${what}: ${JSON.stringify(res.json)}`).toBe(422);
  expect(res.json.error.code, what).toBe('empty_input');
  expect(res.json.error.type, what).toBe('invalid_request_error');
  expect(res.json.error.param, what).toBe(param);
  expect(res.json.error.message.startsWith(`${name} has no text the model can read`), what).toBe(true);
}

describe('inputs with nothing to read: 422 EMPTY_INPUT on every route', () => {
  it('TEI /embed and / name the element (or the lone string) and count the others', async () => {
    for (const route of ['/embed', '/']) {
      for (const blank of NOTHING) {
        const what = `${route} ${JSON.stringify(blank)}`;
        expectEmpty(await postJson(`${url}${route}`, { inputs: ['a sentence', blank] }), 'inputs[1]', what);
        expectEmpty(await postJson(`${url}${route}`, { inputs: blank }), 'inputs', what);
      }
      const many = await postJson(`${url}${route}`, { inputs: ['x', ' ', 'y', '\u200b', ''] });
      expectEmpty(many, 'inputs[1]', 'several');
      expect(many.json.error).toMatch(/and so have 2 more/);
    }
  });

  it('OpenAI /v1/embeddings and /embeddings, in their error shape with param "input"', async () => {
    for (const route of ['/v1/embeddings', '/embeddings']) {
      for (const blank of NOTHING) {
        const what = `${route} ${JSON.stringify(blank)}`;
        expectOpenAiEmpty(await postJson(`${url}${route}`, { input: ['ok', 'fine', blank], model: 'embed' }), 'input[2]', 'input', what);
        expectOpenAiEmpty(await postJson(`${url}${route}`, { input: blank, model: 'embed' }), 'input', 'input', what);
      }
    }
  });

  it('Ollama /api/embed and TEI /similarity', async () => {
    for (const blank of NOTHING) {
      const what = JSON.stringify(blank);
      expectEmpty(await postJson(`${url}/api/embed`, { model: 'embed', input: ['ok', blank] }), 'input[1]', what);
      expectEmpty(
        await postJson(`${url}/similarity`, { inputs: { source_sentence: blank, sentences: ['a', 'b'] } }),
        'inputs.source_sentence',
        what,
      );
      expectEmpty(
        await postJson(`${url}/similarity`, { inputs: { source_sentence: 'a', sentences: ['b', blank] } }),
        'inputs.sentences[1]',
        what,
      );
    }
  });

  it('/search: the query (dense, lexical, inline candidates) and each candidate', async () => {
    for (const blank of NOTHING) {
      const what = JSON.stringify(blank);
      expectEmpty(await postJson(`${url}/search`, { collection: 'plain', query: blank }), 'query', what);
      expectEmpty(await postJson(`${url}/search`, { collection: 'words', query: blank, mode: 'lexical' }), 'query', what);
      expectEmpty(await postJson(`${url}/search`, { collection: 'words', query: blank, mode: 'hybrid' }), 'query', what);
      expectEmpty(await postJson(`${url}/search`, { query: blank, candidates: ['a', 'b'] }), 'query', what);
      expectEmpty(await postJson(`${url}/search`, { query: 'a', candidates: ['a', 'b', blank] }), 'candidates[2]', what);
    }
  });

  it('collection upserts name the document whose text would be embedded, and store nothing', async () => {
    for (const blank of NOTHING) {
      const res = await postJson(`${url}/collections/plain/documents`, {
        documents: [
          { id: 'a', text: 'a real document' },
          { id: 'b', text: blank, vector: Array.from({ length: 64 }, (_, i) => (i === 0 ? 1 : 0)) },
          { id: 'c', text: blank },
        ],
      });
      expectEmpty(res, 'documents[2].text', JSON.stringify(blank));
    }
    const info = (await fetch(`${url}/collections/plain`).then((r) => r.json())) as { count: number };
    expect(info.count).toBe(0); // all or nothing
    // Text stored beside a given vector is not embedded, so it may be anything (it is kept for display).
    const kept = await postJson(`${url}/collections/plain/documents`, {
      documents: [{ id: 'b', text: ' ', vector: Array.from({ length: 64 }, (_, i) => (i === 0 ? 1 : 0)) }],
    });
    expect(kept.status).toBe(200);
  });

  it('/rerank and /v1/rerank: the query and each text', async () => {
    for (const blank of NOTHING) {
      const what = JSON.stringify(blank);
      expectEmpty(await postJson(`${url}/rerank`, { query: blank, texts: ['a', 'b'] }), 'query', what);
      expectEmpty(await postJson(`${url}/rerank`, { query: 'a', texts: ['a', blank] }), 'texts[1]', what);
      expectOpenAiEmpty(await postJson(`${url}/v1/rerank`, { query: blank, documents: ['a'] }), 'query', 'query', what);
      expectOpenAiEmpty(
        await postJson(`${url}/v1/rerank`, { query: 'q', documents: ['a', 'b', blank] }),
        'documents[2]',
        'documents',
        what,
      );
      expectOpenAiEmpty(
        await postJson(`${url}/v1/rerank`, { query: 'q', documents: [{ text: 'a' }, { text: blank }] }),
        'documents[1].text',
        'documents',
        what,
      );
    }
  });

  it('still embeds text with something to read, punctuation and symbols included, and /tokenize shows anything', async () => {
    const ok = await postJson(`${url}/embed`, { inputs: ['a', ' a ', '?', '😀', '\u200bword', '1'] });
    expect(ok.status).toBe(200);
    for (const v of ok.json as number[][]) expect(Math.hypot(...v)).toBeCloseTo(1, 4);
    // /tokenize is a diagnostic: it shows what the tokenizer makes of any text, even of nothing.
    const tokens = await postJson(`${url}/tokenize`, { inputs: ['   ', ''] });
    expect(tokens.status).toBe(200);
    expect((tokens.json as Array<Array<{ special: boolean }>>).map((t) => t.every((x) => x.special))).toEqual([true, true]);
  });

  it('the runtime refuses them itself, naming the inputs, before queueing any work', async () => {
    const engine = server.models.get('embed')!;
    const batches = engine.stats.batches;
    const err = await engine.embed(['ok', '\u200b', ' ', 'fine'], {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).code).toBe('EMPTY_INPUT');
    expect((err as RuntimeError).details.emptyInputs).toEqual([1, 2]);
    expect((err as RuntimeError).message).toMatch(/^input 1 has no text the model can read .*, and so have 1 more/);
    const rerankErr = await server
      .models!.get('rerank')!
      .rerank(' ', ['a', ''], {})
      .catch((e: unknown) => e);
    expect((rerankErr as RuntimeError).details.emptyInputs).toEqual(['query', 1]);
    expect(engine.stats.batches).toBe(batches);
  });
});
