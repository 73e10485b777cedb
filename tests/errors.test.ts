/** Every documented client error of /embed and the operational routes, through a real server. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, readReference, startServer, TINY_BERT, type BertReference, type TestServer } from './helpers.js';

const ref = readReference<BertReference>(TINY_BERT);

describe('documented errors', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({ modelDir: TINY_BERT }, { maxInputs: 8, bodyLimit: 4096, maxInputChars: 1000 });
  });
  afterAll(async () => s?.close());

  const cases: Array<[string, unknown, number, string, RegExp?]> = [
    ['a number as inputs', { inputs: 5 }, 422, 'validation', /inputs must be string or array/],
    ['null inputs', { inputs: null }, 422, 'validation'],
    ['missing inputs', { text: 'x' }, 422, 'validation', /inputs/],
    ['an empty list', { inputs: [] }, 422, 'validation', /must not be empty/],
    ['an empty string', { inputs: '' }, 422, 'validation', /empty string/],
    ['a non-string item', { inputs: ['a', 3] }, 422, 'validation'],
    ['a body that is an array', [1, 2], 422, 'validation'],
    ['unparsable JSON', '{"inputs": ', 422, 'validation'],
    ['too many inputs', { inputs: Array(9).fill('x') }, 413, 'payload_too_large', /at most 8/],
    ['a body over the limit', { inputs: 'x'.repeat(5000) }, 413, 'payload_too_large'],
    ['an input over the character limit', { inputs: 'x'.repeat(1001) }, 413, 'payload_too_large'],
    ['a too-long input with truncate: false', { inputs: ref.long_sentence.sentence, truncate: false }, 413, 'payload_too_large', /maximum of 48 tokens/],
    ['dimensions of 0', { inputs: 'a', dimensions: 0 }, 422, 'validation'],
    ['dimensions above the model size', { inputs: 'a', dimensions: 65 }, 422, 'validation', /1\.\.64/],
    ['fractional dimensions', { inputs: 'a', dimensions: 2.5 }, 422, 'validation'],
    ['dimensions as a string', { inputs: 'a', dimensions: '16' }, 422, 'validation'],
    ['layer out of range', { inputs: 'a', layer: 9 }, 422, 'validation', /layer/],
    ['an unknown prompt_name', { inputs: 'a', prompt_name: 'nope' }, 422, 'validation', /query, passage/],
    ['prompt_name with instruction', { inputs: 'a', prompt_name: 'query', instruction: 'x' }, 422, 'validation', /not both/],
    ['token_prepending on an encoder', { inputs: 'a', token_prepending: true }, 422, 'validation', /token_prepending/],
    ['a bad truncation_direction', { inputs: 'a', truncation_direction: 'up' }, 422, 'validation'],
    ['normalize as a string', { inputs: 'a', normalize: 'yes' }, 422, 'validation'],
  ];
  for (const [what, body, status, type, message] of cases) {
    it(`${what} → ${status} ${type}`, async () => {
      const res = await postJson(`${s.url}/embed`, body);
      expect(res.status).toBe(status);
      expect(res.json.error_type).toBe(type);
      expect(typeof res.json.error).toBe('string');
      if (message) expect(res.json.error).toMatch(message);
      expect(res.headers.get('x-request-id')).toBeTruthy();
    });
  }

  it('a non-JSON content type → 422 validation', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
      const res = await fetch(`${s.url}/embed`, { method: 'POST', headers: { 'content-type': type }, body: 'inputs=hello' });
      expect(res.status).toBe(422);
      expect(((await res.json()) as { error_type: string }).error_type).toBe('validation');
    }
  });

  it('a bad x-request-timeout-ms → 422', async () => {
    const res = await postJson(`${s.url}/embed`, { inputs: 'a' }, { 'x-request-timeout-ms': 'soon' });
    expect(res.status).toBe(422);
  });

  it('unknown routes → 404 not_found', async () => {
    const res = await fetch(`${s.url}/nothing-here`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error_type: 'not_found' });
  });

  it('null knobs mean "not given" and unknown fields are ignored', async () => {
    const res = await postJson(`${s.url}/embed`, { inputs: 'a', dimensions: null, prompt_name: null, whatever: 1 });
    expect(res.status).toBe(200);
    expect(res.json[0]).toHaveLength(64);
  });

  it('health, ready and info answer', async () => {
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
    expect((await fetch(`${s.url}/ready`)).status).toBe(200);
    const info = (await (await fetch(`${s.url}/info`)).json()) as Record<string, any>;
    expect(info).toMatchObject({ dimensions: 64, layers: 4, max_input_length: 48, pooling: 'mean', execution_provider: 'cpu' });
    expect(info.batching.max_batch_size).toBeGreaterThan(0);
  });
});
