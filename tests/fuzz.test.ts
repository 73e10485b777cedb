/** Property test: random and malformed requests to every route only ever get documented answers. */
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/runtime/engine.js';
import { buildApp } from '../src/server/app.js';
import { TINY_BERT } from './helpers.js';

const DOCUMENTED = new Set([200, 401, 404, 409, 413, 422, 429, 503, 504]);
const POST_ROUTES = ['/embed', '/v1/embeddings'];
const GET_ROUTES = ['/health', '/ready', '/info', '/metrics', '/v1/models', '/openapi.json'];

const knob = fc.record(
  {
    dimensions: fc.oneof(fc.integer({ min: -5, max: 200 }), fc.double(), fc.string(), fc.constant(null)),
    layer: fc.oneof(fc.integer({ min: -2, max: 10 }), fc.string(), fc.constant(null)),
    prompt_name: fc.oneof(fc.constantFrom('query', 'passage', 'nope'), fc.integer()),
    instruction: fc.oneof(fc.string(), fc.integer()),
    normalize: fc.oneof(fc.boolean(), fc.string()),
    truncate: fc.oneof(fc.boolean(), fc.constant(0)),
    truncation_direction: fc.oneof(fc.constantFrom('left', 'Right', 'up'), fc.integer()),
    token_prepending: fc.oneof(fc.boolean(), fc.string()),
    encoding_format: fc.constantFrom('float', 'base64', 'hex'),
  },
  { requiredKeys: [] },
);
const texts = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.array(fc.string({ maxLength: 80 }), { maxLength: 12 }),
  fc.array(fc.integer(), { maxLength: 5 }),
  fc.anything(),
);
/** Bodies near the schema (so validation and the engine are reached) and far from it. */
const body = fc.oneof(
  fc.tuple(texts, knob).map(([t, k]) => JSON.stringify({ inputs: t, input: t, ...k })),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 300 }),
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('latin1')),
);
const contentType = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'text/plain',
  'application/octet-stream',
  undefined,
);

describe('fuzzing every route', () => {
  let engine: Engine;
  let app: FastifyInstance;
  beforeAll(async () => {
    engine = await Engine.load({ modelDir: TINY_BERT, workers: 1, intraOpThreads: 1 });
    await engine.warmUp();
    app = await buildApp({ embedder: engine, limits: { maxEventLoopDelayMs: 0 } });
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
    await engine?.close();
  });

  it('POST routes answer only documented statuses, in the documented error shapes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...POST_ROUTES), body, contentType, async (url, payload, type) => {
        const res = await app.inject({ method: 'POST', url, payload, headers: type ? { 'content-type': type } : {} });
        expect(DOCUMENTED.has(res.statusCode), `${url} ${res.statusCode} for ${payload.slice(0, 120)}: ${res.body.slice(0, 200)}`).toBe(
          true,
        );
        if (res.statusCode !== 200) {
          const json = res.json();
          if (url.startsWith('/v1/')) expect(typeof json.error.message).toBe('string');
          else expect(typeof json.error_type).toBe('string');
        }
      }),
      { numRuns: 400 },
    );
  });

  it('GET routes and unknown paths never fail, whatever the method or query', async () => {
    const path = fc.oneof(
      fc.constantFrom(...GET_ROUTES, ...POST_ROUTES),
      fc.webPath(),
      fc.string().map((s) => `/${encodeURIComponent(s)}`),
    );
    await fc.assert(
      fc.asyncProperty(
        path,
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH'),
        fc.string({ maxLength: 40 }),
        async (url, method, q) => {
          const res = await app.inject({ method: method as 'GET', url: `${url}?q=${encodeURIComponent(q)}` });
          expect(
            DOCUMENTED.has(res.statusCode) || (res.statusCode >= 300 && res.statusCode < 400),
            `${method} ${url} → ${res.statusCode}`,
          ).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'POST', url: '/embed', payload: { inputs: 'still up' } })).statusCode).toBe(200);
  });
});
