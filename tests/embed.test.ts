/** POST /embed end to end on a real ONNX model, against torch's own outputs. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BertReference,
  cosine,
  modelVariant,
  normalized,
  postJson,
  readReference,
  startServer,
  type TestServer,
  TINY_BERT,
} from './helpers.js';

const ref = readReference<BertReference>(TINY_BERT);

describe('POST /embed parity with torch', () => {
  let mean: TestServer;
  let cls: TestServer;
  beforeAll(async () => {
    mean = await startServer({ modelDir: TINY_BERT });
    cls = await startServer({ modelDir: modelVariant(TINY_BERT, { 'embedder.json': '{"pooling": "cls"}' }) });
  });
  afterAll(async () => {
    await mean?.close();
    await cls?.close();
  });

  for (const [name, get] of [
    ['mean', () => mean],
    ['cls', () => cls],
  ] as const) {
    it(`${name} pooling matches torch for a padded batch (cosine ≥ 0.9999)`, async () => {
      const res = await postJson(`${get().url}/embed`, { inputs: ref.sentences });
      expect(res.status).toBe(200);
      const vectors = res.json as number[][];
      expect(vectors).toHaveLength(ref.sentences.length);
      vectors.forEach((v, i) => {
        expect(v).toHaveLength(64);
        expect(cosine(v, ref.pooled[name][i]!)).toBeGreaterThanOrEqual(0.9999);
        expect(Math.hypot(...v)).toBeCloseTo(1, 5);
      });
    });

    it(`${name} pooling with dimensions matches torch's renormalized prefix`, async () => {
      const res = await postJson(`${get().url}/embed`, { inputs: ref.sentences, dimensions: 16 });
      expect(res.status).toBe(200);
      (res.json as number[][]).forEach((v, i) => {
        expect(v).toHaveLength(16);
        const expected = normalized(ref.pooled[name][i]!, 16);
        expect(cosine(v, expected)).toBeGreaterThanOrEqual(0.9999);
        expect(Math.hypot(...v)).toBeCloseTo(1, 5);
      });
    });
  }

  it('a truncated vector equals the renormalized prefix of the full one', async () => {
    const full = (await postJson(`${mean.url}/embed`, { inputs: ref.sentences[2] })).json[0] as number[];
    const short = (await postJson(`${mean.url}/embed`, { inputs: ref.sentences[2], dimensions: 8 })).json[0] as number[];
    const expected = normalized(full, 8);
    short.forEach((x, i) => expect(x).toBeCloseTo(expected[i]!, 6));
  });

  it("normalize: false returns torch's raw pooled vector", async () => {
    const res = await postJson(`${mean.url}/embed`, { inputs: [ref.sentences[1]], normalize: false });
    const v = res.json[0] as number[];
    v.forEach((x, i) => expect(x).toBeCloseTo(ref.pooled.mean[1]![i]!, 4));
  });

  it('truncates long inputs like torch did and reports real token counts', async () => {
    const res = await postJson(`${mean.url}/embed`, { inputs: [ref.long_sentence.sentence, ref.sentences[0]] });
    expect(res.status).toBe(200);
    expect(cosine(res.json[0], ref.long_sentence.mean)).toBeGreaterThanOrEqual(0.9999);
    expect(Number(res.headers.get('x-compute-tokens'))).toBe(48 + ref.token_ids[0]!.length);
    // Present and a millisecond figure (a missing header is null, which Number() would turn into 0).
    const ms = (h: string): number => {
      const v = res.headers.get(h);
      expect(v, h).toMatch(/^\d+\.\d{2}$/);
      return Number(v);
    };
    const [total, tokenize, queue, inference] = ['x-total-time', 'x-tokenization-time', 'x-queue-time', 'x-inference-time'].map(ms);
    expect(inference!).toBeGreaterThan(0);
    expect(total!).toBeGreaterThanOrEqual(tokenize! + queue! + inference! - 0.05);
  });

  it('accepts a single string and TEI-style capitalized truncation_direction', async () => {
    const res = await postJson(`${mean.url}/embed`, { inputs: ref.long_sentence.sentence, truncation_direction: 'Left' });
    expect(res.status).toBe(200);
    expect(res.json).toHaveLength(1);
    // Left truncation keeps the end of the text, so it differs from the right-truncated reference.
    expect(cosine(res.json[0], ref.long_sentence.mean)).toBeLessThan(0.9999);
  });

  it('prompt_name embeds the prefixed text', async () => {
    const a = await postJson(`${mean.url}/embed`, { inputs: 'the cat sat', prompt_name: 'query' });
    const b = await postJson(`${mean.url}/embed`, { inputs: 'query: the cat sat' });
    expect(cosine(a.json[0], b.json[0])).toBeGreaterThan(0.99999);
  });

  it('echoes a safe x-request-id and generates one otherwise', async () => {
    const given = await postJson(`${mean.url}/embed`, { inputs: 'a' }, { 'x-request-id': 'abc-123' });
    expect(given.headers.get('x-request-id')).toBe('abc-123');
    const made = await postJson(`${mean.url}/embed`, { inputs: 'a' }, { 'x-request-id': 'has spaces and {braces}' });
    expect(made.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});
