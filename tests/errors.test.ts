/** Every documented client error of /embed and the operational routes, through a real server. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BertReference, postJson, readReference, startServer, type TestServer, TINY_BERT } from './helpers.js';

const ref = readReference<BertReference>(TINY_BERT);

describe('documented errors', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({ modelDir: TINY_BERT }, { maxInputs: 8, bodyLimit: 4096, maxInputChars: 1000 });
  });
  afterAll(async () => s?.close());

  // [what, body, status, error_type, error_code, what the message must name]
  const cases: Array<[string, unknown, number, string, string, RegExp?]> = [
    ['a number as inputs', { inputs: 5 }, 422, 'validation', 'REQUEST_VALIDATION', /inputs must be string or array/],
    ['null inputs', { inputs: null }, 422, 'validation', 'REQUEST_VALIDATION'],
    ['missing inputs', { text: 'x' }, 422, 'validation', 'REQUEST_VALIDATION', /inputs/],
    ['an empty list', { inputs: [] }, 422, 'validation', 'INPUTS_EMPTY', /must not be empty/],
    ['an empty string', { inputs: '' }, 422, 'validation', 'EMPTY_INPUT', /^inputs has no text the model can read/],
    ['a non-string item', { inputs: ['a', 3] }, 422, 'validation', 'REQUEST_VALIDATION'],
    ['a body that is an array', [1, 2], 422, 'validation', 'REQUEST_VALIDATION'],
    ['unparsable JSON', '{"inputs": ', 422, 'validation', 'INVALID_JSON'],
    ['too many inputs', { inputs: Array(9).fill('x') }, 413, 'payload_too_large', 'TOO_MANY_INPUTS', /at most 8/],
    ['a body over the limit', { inputs: 'x'.repeat(5000) }, 413, 'payload_too_large', 'BODY_TOO_LARGE'],
    ['an input over the character limit', { inputs: 'x'.repeat(1001) }, 413, 'payload_too_large', 'INPUT_TOO_MANY_CHARS'],
    [
      'a too-long input with truncate: false',
      { inputs: ref.long_sentence.sentence, truncate: false },
      413,
      'payload_too_large',
      'INPUT_TOO_LONG',
      /maximum of 48 tokens/,
    ],
    ['dimensions of 0', { inputs: 'a', dimensions: 0 }, 422, 'validation', 'REQUEST_VALIDATION'],
    ['dimensions above the model size', { inputs: 'a', dimensions: 65 }, 422, 'validation', 'DIMENSIONS_OUT_OF_RANGE', /1\.\.64/],
    ['fractional dimensions', { inputs: 'a', dimensions: 2.5 }, 422, 'validation', 'REQUEST_VALIDATION'],
    ['dimensions as a string', { inputs: 'a', dimensions: '16' }, 422, 'validation', 'REQUEST_VALIDATION'],
    ['layer out of range', { inputs: 'a', layer: 9 }, 422, 'validation', 'LAYER_OUT_OF_RANGE', /layer/],
    ['an unknown prompt_name', { inputs: 'a', prompt_name: 'nope' }, 422, 'validation', 'UNKNOWN_PROMPT', /query, passage/],
    [
      'prompt_name with instruction',
      { inputs: 'a', prompt_name: 'query', instruction: 'x' },
      422,
      'validation',
      'PROMPT_AND_INSTRUCTION',
      /not both/,
    ],
    [
      'token_prepending on an encoder',
      { inputs: 'a', token_prepending: true },
      422,
      'validation',
      'TOKEN_PREPENDING_UNSUPPORTED',
      /token_prepending/,
    ],
    ['a bad truncation_direction', { inputs: 'a', truncation_direction: 'up' }, 422, 'validation', 'REQUEST_VALIDATION'],
    ['normalize as a string', { inputs: 'a', normalize: 'yes' }, 422, 'validation', 'REQUEST_VALIDATION'],
  ];
  for (const [what, body, status, type, code, message] of cases) {
    it(`${what} → ${status} ${type} ${code}`, async () => {
      const res = await postJson(`${s.url}/embed`, body);
      expect(res.status).toBe(status);
      expect(res.json.error_type).toBe(type);
      expect(res.json.error_code).toBe(code);
      expect(typeof res.json.error).toBe('string');
      if (message) expect(res.json.error).toMatch(message);
      expect(res.headers.get('x-request-id')).toBeTruthy();
    });
  }

  it('a non-JSON content type → 422 validation', async () => {
    // Fastify parses text/plain as a string, which the schema refuses; other types have no parser.
    for (const [type, code] of [
      ['text/plain', 'REQUEST_VALIDATION'],
      ['application/x-www-form-urlencoded', 'UNSUPPORTED_MEDIA_TYPE'],
    ]) {
      const res = await fetch(`${s.url}/embed`, { method: 'POST', headers: { 'content-type': type! }, body: 'inputs=hello' });
      expect(res.status).toBe(422);
      expect(await res.json()).toMatchObject({ error_type: 'validation', error_code: code });
    }
  });

  it('a bad x-request-timeout-ms → 422', async () => {
    const res = await postJson(`${s.url}/embed`, { inputs: 'a' }, { 'x-request-timeout-ms': 'soon' });
    expect(res.status).toBe(422);
    expect(res.json.error_code).toBe('INVALID_REQUEST_TIMEOUT');
  });

  it('unknown routes → 404 not_found', async () => {
    const res = await fetch(`${s.url}/nothing-here`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error_type: 'not_found', error_code: 'ROUTE_NOT_FOUND' });
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
