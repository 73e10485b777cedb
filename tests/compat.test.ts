/**
 * The other ecosystems' routes in their own shapes (TEI's `/`, `/tokenize`, `/decode`,
 * `/similarity`; Ollama's `/api/embed`; Infinity's `/embeddings`), OpenAI's request limits, and
 * quantized outputs checked against a hand computation from /embed's float vectors.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../src/server/app.js';
import { type BertReference, cosine, modelVariant, postJson, readReference, startServer, type TestServer, TINY_BERT } from './helpers.js';

const ref = readReference<BertReference>(TINY_BERT);

describe('TEI, Ollama and Infinity routes', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({ modelDir: TINY_BERT });
  });
  afterAll(async () => s?.close());

  const embed = async (inputs: string[], extra: Record<string, unknown> = {}): Promise<number[][]> => {
    const res = await postJson(`${s.url}/embed`, { inputs, ...extra });
    expect(res.status).toBe(200);
    return res.json as number[][];
  };

  it("POST / (TEI's root route) is /embed", async () => {
    const res = await postJson(`${s.url}/`, { inputs: ref.sentences, dimensions: 32 });
    expect(res.status).toBe(200);
    expect(res.json).toEqual(await embed(ref.sentences, { dimensions: 32 }));
  });

  it("POST /tokenize: the tokenizer's ids (as Python tokenizers makes them), with TEI's token fields", async () => {
    const res = await postJson(`${s.url}/tokenize`, { inputs: ref.sentences });
    expect(res.status).toBe(200);
    const tokens = res.json as Array<Array<{ id: number; text: string; special: boolean; start: number | null; stop: number | null }>>;
    expect(tokens.map((t) => t.map((x) => x.id))).toEqual(ref.token_ids);
    // By hand: the uncased tokenizer strips the accent for the id, the text is the input's own span.
    const one = await postJson(`${s.url}/tokenize`, { inputs: 'Héllo, world!' });
    expect(one.json).toEqual([
      [
        { id: 2, text: '[CLS]', special: true, start: null, stop: null },
        { id: 150, text: 'Hé', special: false, start: 0, stop: 2 },
        { id: 84, text: 'l', special: false, start: 2, stop: 3 },
        { id: 84, text: 'l', special: false, start: 3, stop: 4 },
        { id: 87, text: 'o', special: false, start: 4, stop: 5 },
        { id: 52, text: ',', special: false, start: 5, stop: 6 },
        { id: 333, text: 'world', special: false, start: 7, stop: 12 },
        { id: 41, text: '!', special: false, start: 12, stop: 13 },
        { id: 3, text: '[SEP]', special: true, start: null, stop: null },
      ],
    ]);
    const plain = await postJson(`${s.url}/tokenize`, { inputs: 'Héllo, world!', add_special_tokens: false });
    expect((plain.json as unknown[][])[0]).toHaveLength(7);
    // Untruncated: every token of a text longer than the model's maximum.
    const long = await postJson(`${s.url}/tokenize`, { inputs: ref.long_sentence.sentence });
    expect((long.json as unknown[][])[0]).toHaveLength(ref.long_sentence.untruncated_length);
  });

  it('POST /decode: one sequence or several, special tokens skipped by default', async () => {
    expect((await postJson(`${s.url}/decode`, { ids: ref.token_ids[0] })).json).toEqual(['hello']);
    const both = await postJson(`${s.url}/decode`, { ids: [ref.token_ids[0], ref.token_ids[0]], skip_special_tokens: false });
    expect(both.json).toEqual(['[CLS] hello [SEP]', '[CLS] hello [SEP]']);
    const bad = await postJson(`${s.url}/decode`, { ids: [5, 999999] });
    expect(bad.status).toBe(422);
    expect(bad.json).toMatchObject({ error_type: 'validation', error_code: 'UNKNOWN_TOKEN_ID' });
    expect(bad.json.error).toMatch(/ids\[1\] = 999999/);
  });

  it("POST /similarity: the cosine of the source's vector with each sentence's", async () => {
    const res = await postJson(`${s.url}/similarity`, { inputs: { source_sentence: ref.sentences[1], sentences: ref.sentences } });
    expect(res.status).toBe(200);
    const v = await embed(ref.sentences);
    const scores = res.json as number[];
    expect(scores).toHaveLength(ref.sentences.length);
    scores.forEach((score, i) => expect(score).toBeCloseTo(cosine(v[1]!, v[i]!), 5));
    expect(scores[1]).toBeCloseTo(1, 5);
    expect((await postJson(`${s.url}/similarity`, { inputs: { source_sentence: 'x', sentences: [] } })).status).toBe(422);
  });

  it("POST /api/embed: Ollama's shape, /embed's vectors, real token counts", async () => {
    const res = await postJson(`${s.url}/api/embed`, { model: 'nomic-embed-text', input: ref.sentences });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ model: 'default', load_duration: 0 });
    expect(res.json.total_duration).toBeGreaterThan(0);
    expect(res.json.embeddings).toEqual(await embed(ref.sentences));
    expect(res.json.prompt_eval_count).toBe(ref.token_ids.reduce((n, ids) => n + ids.length, 0));
    const short = await postJson(`${s.url}/api/embed`, { model: 'm', input: 'hello', dimensions: 16 });
    expect(short.json.embeddings).toEqual(await embed(['hello'], { dimensions: 16 }));
    const tooLong = await postJson(`${s.url}/api/embed`, { model: 'm', input: ref.long_sentence.sentence, truncate: false });
    expect(tooLong.status).toBe(413);
    expect(tooLong.json).toMatchObject({ error_type: 'payload_too_large', error_code: 'INPUT_TOO_LONG' });
  });

  it('POST /embeddings (Infinity-style) is /v1/embeddings, errors in OpenAI shape', async () => {
    const a = await postJson(`${s.url}/embeddings`, { input: ref.sentences, model: 'm' });
    const b = await postJson(`${s.url}/v1/embeddings`, { input: ref.sentences, model: 'm' });
    expect(a.status).toBe(200);
    expect(a.json).toEqual(b.json);
    const bad = await postJson(`${s.url}/embeddings`, { input: 5 });
    expect(bad.status).toBe(422);
    expect(bad.json.error).toMatchObject({ type: 'invalid_request_error', param: 'input' });
  });
});

describe("OpenAI's request limits by default", () => {
  let s: TestServer;
  beforeAll(async () => {
    // No load shedding: parsing an 8 MiB body on a busy CI machine may lag the event loop.
    s = await startServer({ modelDir: TINY_BERT, workers: 2 }, { maxEventLoopDelayMs: 0 });
  });
  afterAll(async () => s?.close());

  it('2048 inputs in a body of nearly 8 MiB are served; 2049 inputs or a larger body are a 413', async () => {
    expect(DEFAULT_LIMITS).toMatchObject({ maxInputs: 2048, bodyLimit: 8 * 1024 * 1024 });
    const text = (i: number): string => `${i} ${'lorem ipsum dolor '.repeat(220)}`;
    const big = Array.from({ length: 2048 }, (_, i) => text(i));
    expect(JSON.stringify({ input: big }).length).toBeGreaterThan(7.5 * 1024 * 1024);
    const ok = await postJson(`${s.url}/v1/embeddings`, { input: big, model: 'm', dimensions: 8 });
    expect(ok.status, JSON.stringify(ok.json).slice(0, 300)).toBe(200);
    expect(ok.json.data).toHaveLength(2048);
    const many = await postJson(`${s.url}/v1/embeddings`, { input: Array(2049).fill('x'), model: 'm' });
    expect(many.status, JSON.stringify(many.json).slice(0, 300)).toBe(413);
    expect(many.json.error).toMatchObject({ type: 'invalid_request_error', code: 'payload_too_large' });
    const heavy = await postJson(`${s.url}/v1/embeddings`, {
      input: [...big, ...big.slice(0, 100)].map((t) => t.slice(0, 3900)),
      model: 'm',
    });
    expect(heavy.status, JSON.stringify(heavy.json).slice(0, 300)).toBe(413);
  }, 60_000);
});

describe('quantized outputs (int8, uint8, binary, ubinary)', () => {
  const calibration = [
    'A man is playing a guitar.',
    'The stock market fell today.',
    'What is the capital of France?',
    'hello',
    'Cats sleep a lot.',
  ];
  let s: TestServer;
  let builtIn: TestServer;
  beforeAll(async () => {
    const embedder = { ...JSON.parse(readFileSync(join(TINY_BERT, 'embedder.json'), 'utf8')), calibration: 'calibration.txt' };
    const dir = modelVariant(TINY_BERT, { 'embedder.json': JSON.stringify(embedder), 'calibration.txt': `${calibration.join('\n')}\n\n` });
    s = await startServer({ modelDir: dir });
    builtIn = await startServer({ modelDir: TINY_BERT });
  });
  afterAll(async () => {
    await s?.close();
    await builtIn?.close();
  });

  it('/info names where the int8/uint8 ranges come from', async () => {
    type Info = { embedding_calibration: { source: string; sentences: number }; embedding_types: string[] };
    const info = (await (await fetch(`${s.url}/info`)).json()) as Info;
    expect(info.embedding_calibration).toEqual({ source: 'embedder.json: calibration.txt', sentences: 5 });
    expect(info.embedding_types).toEqual(['float', 'int8', 'uint8', 'binary', 'ubinary']);
    const builtInInfo = (await (await fetch(`${builtIn.url}/info`)).json()) as Info;
    expect(builtInInfo.embedding_calibration.source).toBe('built-in');
    expect(builtInInfo.embedding_calibration.sentences).toBeGreaterThanOrEqual(100);
  });

  for (const dims of [64, 16]) {
    it(`int8/uint8 follow the calibration set's ranges by hand (dimensions ${dims})`, async () => {
      // The ranges by hand: per dimension, min and max of the calibration sentences' float vectors.
      const cal = (await postJson(`${s.url}/embed`, { inputs: calibration, dimensions: dims })).json as number[][];
      const min = cal[0]!.map((_, d) => Math.min(...cal.map((v) => v[d]!)));
      const max = cal[0]!.map((_, d) => Math.max(...cal.map((v) => v[d]!)));
      const texts = [...calibration, ...ref.sentences];
      const floats = (await postJson(`${s.url}/embed`, { inputs: texts, dimensions: dims })).json as number[][];
      for (const type of ['int8', 'uint8'] as const) {
        const res = await postJson(`${s.url}/embed`, { inputs: texts, dimensions: dims, embedding_type: type });
        expect(res.status).toBe(200);
        const q = res.json as number[][];
        const offset = type === 'int8' ? 128 : 0;
        q.forEach((v, i) => {
          expect(v).toHaveLength(dims);
          v.forEach((x, d) => {
            const scaled = (floats[i]![d]! - min[d]!) / ((max[d]! - min[d]!) / 255) - offset;
            const expected = Math.min(255 - offset, Math.max(-offset, Math.trunc(scaled)));
            // float32 vs float64 rounding may move a value sitting on a step boundary by one.
            expect(Math.abs(x - expected), `${type} text ${i} dim ${d}`).toBeLessThanOrEqual(1);
          });
        });
        // Each dimension's minimum over the calibration set is exactly the bottom of the range.
        for (let d = 0; d < dims; d++) {
          const at = cal.findIndex((v) => v[d] === min[d]);
          expect(q[at]![d]! + offset).toBe(0);
        }
      }
      // The OpenAI route gives the same integers through encoding_format.
      const openai = await postJson(`${s.url}/v1/embeddings`, { input: texts, dimensions: dims, encoding_format: 'int8' });
      expect(openai.json.data.map((d: { embedding: number[] }) => d.embedding)).toEqual(
        (await postJson(`${s.url}/embed`, { inputs: texts, dimensions: dims, embedding_type: 'int8' })).json,
      );
    });
  }

  it('binary/ubinary: the sign bits of the (truncated, normalized) float vector, MSB first', async () => {
    for (const dims of [64, 12]) {
      const floats = (await postJson(`${builtIn.url}/embed`, { inputs: ref.sentences, dimensions: dims })).json as number[][];
      const ubinary = (await postJson(`${builtIn.url}/embed`, { inputs: ref.sentences, dimensions: dims, embedding_type: 'ubinary' }))
        .json as number[][];
      const binary = (await postJson(`${builtIn.url}/v1/embeddings`, { input: ref.sentences, dimensions: dims, encoding_format: 'binary' }))
        .json;
      floats.forEach((v, i) => {
        const bytes: number[] = [];
        for (let b = 0; b < Math.ceil(dims / 8); b++) {
          let byte = 0;
          for (let bit = 0; bit < 8; bit++) byte = byte * 2 + ((v[b * 8 + bit] ?? 0) > 0 ? 1 : 0);
          bytes.push(byte);
        }
        expect(ubinary[i]).toEqual(bytes);
        expect(binary.data[i].embedding).toEqual(bytes.map((x) => x - 128));
      });
    }
  });

  it('an unknown type is a 422', async () => {
    expect((await postJson(`${s.url}/embed`, { inputs: 'x', embedding_type: 'int4' })).status).toBe(422);
    expect((await postJson(`${s.url}/v1/embeddings`, { input: 'x', encoding_format: 'int4' })).status).toBe(422);
  });
});

describe('embedder.json calibration', () => {
  it('a missing or empty calibration file stops the load with a message naming it', async () => {
    const { loadModelDir } = await import('../src/runtime/model-dir.js');
    const embedder = (extra: object): string =>
      JSON.stringify({ ...JSON.parse(readFileSync(join(TINY_BERT, 'embedder.json'), 'utf8')), ...extra });
    expect(() => loadModelDir(modelVariant(TINY_BERT, { 'embedder.json': embedder({ calibration: 'nope.txt' }) }))).toThrow(
      /calibration file .*nope\.txt does not exist/,
    );
    expect(() => loadModelDir(modelVariant(TINY_BERT, { 'embedder.json': embedder({ calibration: 'c.txt' }), 'c.txt': '\n \n' }))).toThrow(
      /has no sentences/,
    );
    const spec = loadModelDir(modelVariant(TINY_BERT, { 'embedder.json': embedder({ calibration: 'c.txt' }), 'c.txt': 'one\r\ntwo\n' }));
    expect(spec.calibration).toEqual({ file: 'c.txt', sentences: ['one', 'two'] });
  });
});
