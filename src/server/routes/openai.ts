/** POST /v1/embeddings and GET /v1/models: OpenAI-compatible, so the official clients work unchanged. */
import { endianness } from 'node:os';
import type { FastifyInstance } from 'fastify';
import type { EmbeddingType } from '../../pooling/index.js';
import type { Engine } from '../../runtime/engine.js';
import { ApiError, openAiErrorResponses } from '../errors.js';
import { knobProperties, knobsFromBody, requestEmbedder, type KnobBody } from '../knobs.js';
import type { ServerLimits } from '../app.js';
import type { Metrics } from '../metrics.js';
import { checkTexts, EMBEDDING_TYPES, embeddingTypeDescription, timingHeaders, vectorJson } from './embed.js';

interface EmbeddingsBody extends KnobBody {
  input: string | string[] | number[] | number[][];
  model?: string;
  encoding_format?: 'base64' | EmbeddingType;
  user?: string;
}

const LITTLE_ENDIAN = endianness() === 'LE';

/** OpenAI's base64 encoding: the vector's float32 values, little-endian. */
export function base64Vector(v: Float32Array): string {
  const bytes = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return (LITTLE_ENDIAN ? bytes : Buffer.from(bytes).swap32()).toString('base64');
}

// LangChain for JavaScript sends text; LangChain for Python sends tiktoken ids unless told not to.
const TOKEN_IDS_MESSAGE =
  'input must be text: token-id arrays are ids of another tokenizer and cannot be embedded here. ' +
  'Send the strings themselves (in Python LangChain: OpenAIEmbeddings(check_embedding_ctx_length=False))';

export function openAiRoutes(app: FastifyInstance, engine: Engine, limits: ServerLimits, metrics: Metrics): void {
  const created = Math.floor(Date.now() / 1000);
  const modelId = engine.spec.id;

  // `/embeddings` is the same route for Infinity-style clients whose base URL has no /v1.
  for (const url of ['/v1/embeddings', '/embeddings']) app.post<{ Body: EmbeddingsBody }>(
    url,
    {
      onRequest: async () => engine.admit(),
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
              description: 'One text or a list of texts (token-id arrays are rejected with a 422)',
            },
            model: { type: 'string', description: 'Accepted and ignored: the served model answers' },
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
      if (typeof input !== 'string' && input.some((x) => typeof x !== 'string')) throw new ApiError('validation', TOKEN_IDS_MESSAGE);
      const texts = typeof input === 'string' ? [input] : (input as string[]);
      checkTexts(texts, limits, 'input');
      const embed = requestEmbedder(request, reply, engine, metrics, limits.requestTimeoutMs);
      const format = request.body.encoding_format ?? 'float';
      const result = await embed(texts, { ...knobsFromBody(request.body), embeddingType: format === 'base64' ? 'float' : format });
      reply.headers(timingHeaders(result, performance.now() - started));
      // Built as text: the generic serializer is slow on large float arrays.
      const data = (result.quantized ?? result.vectors).map(
        (v, index) =>
          `{"object":"embedding","index":${index},"embedding":${format === 'base64' ? `"${base64Vector(v as Float32Array)}"` : vectorJson(v)}}`,
      );
      const usage = `{"prompt_tokens":${result.totalTokens},"total_tokens":${result.totalTokens}}`;
      return reply
        .type('application/json')
        .send(`{"object":"list","data":[${data.join(',')}],"model":${JSON.stringify(modelId)},"usage":${usage}}`);
    },
  );

  app.get(
    '/v1/models',
    {
      schema: {
        summary: 'The served model (OpenAI-compatible)',
        tags: ['openai'],
        response: {
          200: {
            type: 'object',
            properties: {
              object: { type: 'string' },
              data: {
                type: 'array',
                items: { type: 'object', properties: { id: { type: 'string' }, object: { type: 'string' }, created: { type: 'integer' }, owned_by: { type: 'string' } } },
              },
            },
          },
        },
      },
    },
    async () => ({ object: 'list', data: [{ id: modelId, object: 'model', created, owned_by: 'embedding-service' }] }),
  );
}
