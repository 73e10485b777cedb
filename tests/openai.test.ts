/** /v1/embeddings through the official `openai` client, and OpenAI's error shape. */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BertReference, cosine, postJson, readReference, startServer, type TestServer, TINY_BERT } from './helpers.js';

const ref = readReference<BertReference>(TINY_BERT);

describe('OpenAI compatibility', () => {
  let server: TestServer;
  let url: string;
  let client: OpenAI;
  beforeAll(async () => {
    server = await startServer({ modelDir: TINY_BERT }, {}, { apiKeys: ['sk-test-key'] });
    url = server.url;
    client = new OpenAI({ apiKey: 'sk-test-key', baseURL: `${url}/v1`, maxRetries: 0 });
  });
  afterAll(async () => server?.close());

  it('the official client (its default base64 path) gets torch-equal vectors and real usage', async () => {
    const res = await client.embeddings.create({ model: 'anything', input: ref.sentences.slice(0, 3) });
    expect(res.object).toBe('list');
    // MODEL_DIR alone serves one model named `default` (API.md), whatever name the client sent.
    expect(res.model).toBe('default');
    expect(res.data.map((d) => d.index)).toEqual([0, 1, 2]);
    res.data.forEach((d, i) => {
      expect(d.embedding).toHaveLength(64);
      expect(cosine(d.embedding, ref.pooled.mean[i]!)).toBeGreaterThanOrEqual(0.9999);
    });
    const tokens = ref.token_ids.slice(0, 3).reduce((n, ids) => n + ids.length, 0);
    expect(res.usage).toEqual({ prompt_tokens: tokens, total_tokens: tokens });
  });

  it('float encoding and dimensions', async () => {
    const res = await client.embeddings.create({ model: 'm', input: ref.sentences[1]!, dimensions: 16, encoding_format: 'float' });
    expect(res.data[0]!.embedding).toHaveLength(16);
    const full = ref.pooled.mean[1]!.slice(0, 16);
    expect(cosine(res.data[0]!.embedding, full)).toBeGreaterThanOrEqual(0.9999);
    // base64 and float agree exactly
    const b64 = await postJson(
      `${url}/v1/embeddings`,
      { input: ref.sentences[1], dimensions: 16, encoding_format: 'base64' },
      { authorization: 'Bearer sk-test-key' },
    );
    const bytes = Buffer.from(b64.json.data[0].embedding, 'base64');
    const decoded = Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
    expect(decoded).toEqual(res.data[0]!.embedding);
  });

  it('rejects token-id arrays with a 422 that says what to do', async () => {
    for (const input of [
      [1, 2, 3],
      [[1, 2], [3]],
    ]) {
      const err = await client.embeddings.create({ model: 'm', input }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(422);
      expect((err as InstanceType<typeof OpenAI.APIError>).message).toMatch(/check_embedding_ctx_length=False/);
    }
  });

  it("uses OpenAI's error shape for every status", async () => {
    const auth = { authorization: 'Bearer sk-test-key' };
    const bad = await postJson(`${url}/v1/embeddings`, { input: 5 }, auth);
    expect(bad.status).toBe(422);
    expect(bad.json.error).toMatchObject({ type: 'invalid_request_error', code: 'validation', param: 'input' });
    const missing = await postJson(`${url}/v1/embeddings`, {}, auth);
    expect(missing.json.error.param).toBe('input');
    const big = await postJson(`${url}/v1/embeddings`, { input: ref.long_sentence.sentence, truncate: false }, auth);
    expect(big.status).toBe(413);
    expect(big.json.error.code).toBe('payload_too_large');
    const unauth = await postJson(`${url}/v1/embeddings`, { input: 'x' });
    expect(unauth.status).toBe(401);
    expect(unauth.json.error).toMatchObject({ code: 'invalid_api_key', type: 'invalid_request_error' });
    const nowhere = await fetch(`${url}/v1/nothing`, { headers: auth });
    expect(nowhere.status).toBe(404);
    expect(((await nowhere.json()) as { error: { code: string } }).error.code).toBe('not_found');
    const wrongKey = new OpenAI({ apiKey: 'sk-wrong', baseURL: `${url}/v1`, maxRetries: 0 });
    await expect(wrongKey.embeddings.create({ model: 'm', input: 'x' })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it('lists the served model', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['default']);
  });
});
