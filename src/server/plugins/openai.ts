/**
 * POST /v1/embeddings (also /embeddings) and GET /v1/models: OpenAI-compatible, so the official
 * clients work unchanged. Everything this plugin registers answers errors in OpenAI's shape (its
 * own error handler, and a not-found handler for the rest of /v1).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { EmbeddingType } from '../../pooling/index.js';
import { ApiError } from '../errors/catalogue.js';
import { openAiErrorResponses, sendOpenAiError } from '../errors/reply.js';
import { checkTexts, listNames } from '../inputs.js';
import { EMPTY_INPUT_RULE, type KnobBody, knobProperties, knobsFromBody, requestEmbedder } from '../knobs.js';
import { admit, admitEarly, modelFor } from '../model-routing.js';
import { timingHeaders } from '../timing.js';
import { base64Vector, vectorJson } from '../vector-json.js';
import type { RouteDeps } from './deps.js';
import { EMBEDDING_TYPES, embeddingTypeDescription } from './embed.js';

interface EmbeddingsBody extends KnobBody {
  input: string | string[] | number[] | number[][];
  model?: string | null;
  encoding_format?: 'base64' | EmbeddingType;
  user?: string;
}

export const openAiPlugin: FastifyPluginAsync<RouteDeps> = async (app, { models, limits, metrics }) => {
  app.setErrorHandler((err, request, reply) => sendOpenAiError(request, reply, err));
  await app.register(
    async (v1) => {
      v1.setNotFoundHandler((request) => {
        throw new ApiError('ROUTE_NOT_FOUND', request.method, request.url.split('?')[0]!);
      });
    },
    { prefix: '/v1' },
  );
  const created = Math.floor(Date.now() / 1000);

  // `/embeddings` is the same route for Infinity-style clients whose base URL has no /v1.
  for (const url of ['/v1/embeddings', '/embeddings'])
    app.post<{ Body: EmbeddingsBody }>(
      url,
      {
        onRequest: admitEarly(models),
        schema: {
          summary: 'Embed texts (OpenAI-compatible)',
          tags: ['openai'],
          body: {
            type: 'object',
            required: ['input'],
            properties: {
              input: {
                anyOf: [
                  { type: 'string' },
                  { type: 'array', items: { type: 'string' } },
                  { type: 'array', items: { type: 'integer' } },
                  { type: 'array', items: { type: 'array', items: { type: 'integer' } } },
                ],
                description: `One text or a list of texts (token-id arrays are rejected with a 422). ${EMPTY_INPUT_RULE}`,
              },
              model: {
                type: ['string', 'null'],
                description: 'A served model by name (GET /v1/models); with one model served, any name is accepted',
              },
              encoding_format: {
                type: 'string',
                enum: ['base64', ...EMBEDDING_TYPES],
                default: 'float',
                description: `float, base64 (little-endian float32) or a quantized type: ${embeddingTypeDescription}`,
              },
              user: { type: 'string' },
              ...knobProperties,
            },
          },
          response: {
            200: {
              type: 'object',
              properties: {
                object: { type: 'string', enum: ['list'] },
                data: {
                  type: 'array',
                  items: {
                    type: 'object',
                    properties: {
                      object: { type: 'string', enum: ['embedding'] },
                      index: { type: 'integer' },
                      embedding: { anyOf: [{ type: 'array', items: { type: 'number' } }, { type: 'string' }] },
                    },
                  },
                },
                model: { type: 'string' },
                usage: { type: 'object', properties: { prompt_tokens: { type: 'integer' }, total_tokens: { type: 'integer' } } },
              },
            },
            ...openAiErrorResponses,
          },
        },
      },
      async (request, reply) => {
        const started = performance.now();
        const { input } = request.body;
        if (typeof input !== 'string' && input.some((x) => typeof x !== 'string')) throw new ApiError('TOKEN_IDS_NOT_SUPPORTED');
        const texts = typeof input === 'string' ? [input] : (input as string[]);
        checkTexts(texts, limits, 'input');
        const embedder = modelFor(models, request.body.model, 'embed', { anyNameWhenSingle: true });
        await admit(models, embedder, request, reply);
        const embed = requestEmbedder(request, reply, embedder, metrics, limits.requestTimeoutMs);
        const format = request.body.encoding_format ?? 'float';
        const result = await embed(
          texts,
          { ...knobsFromBody(request.body), embeddingType: format === 'base64' ? 'float' : format },
          listNames('input', input),
        );
        reply.headers(timingHeaders(result, performance.now() - started));
        // Built as text: the generic serializer is slow on large float arrays.
        const data = (result.quantized ?? result.vectors).map(
          (v, index) =>
            `{"object":"embedding","index":${index},"embedding":${format === 'base64' ? `"${base64Vector(v as Float32Array)}"` : vectorJson(v)}}`,
        );
        const usage = `{"prompt_tokens":${result.totalTokens},"total_tokens":${result.totalTokens}}`;
        return reply
          .type('application/json')
          .send(`{"object":"list","data":[${data.join(',')}],"model":${JSON.stringify(embedder.name)},"usage":${usage}}`);
      },
    );

  app.get(
    '/v1/models',
    {
      schema: {
        summary: 'The served models (OpenAI-compatible)',
        tags: ['openai'],
        response: {
          200: {
            type: 'object',
            properties: {
              object: { type: 'string' },
              data: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    id: { type: 'string' },
                    object: { type: 'string' },
                    created: { type: 'integer' },
                    owned_by: { type: 'string' },
                    task: {
                      type: 'string',
                      enum: ['embed', 'rerank'],
                      description: 'What the model does: embed texts, or rerank (query, document) pairs',
                    },
                  },
                },
              },
            },
          },
        },
      },
    },
    async () => ({
      object: 'list',
      data: models.all.map((e) => ({ id: e.name, object: 'model', created, owned_by: 'embedding-service', task: e.task })),
    }),
  );
};
