/** POST /embed: TEI-compatible embedding. */
import type { FastifyInstance } from 'fastify';
import type { EmbeddingType } from '../../pooling/index.js';
import type { Engine, EmbedResult } from '../../runtime/engine.js';
import { ApiError, errorResponses } from '../errors.js';
import { knobProperties, knobsFromBody, requestEmbedder, type KnobBody } from '../knobs.js';
import type { ServerLimits } from '../app.js';
import type { Metrics } from '../metrics.js';

interface EmbedBody extends KnobBody {
  inputs: string | string[];
  embedding_type?: EmbeddingType;
}

type Vector = Float32Array | Int8Array | Uint8Array;

/** One vector as JSON text: far cheaper than a generic serializer on big float arrays. */
export function vectorJson(v: Vector): string {
  return `[${Array.prototype.join.call(v, ',')}]`;
}

export function vectorsJson(vectors: readonly Vector[]): string {
  return `[${vectors.map(vectorJson).join(',')}]`;
}

/** Timing and usage headers shared by the embedding routes. */
export function timingHeaders(result: EmbedResult, totalMs: number): Record<string, string> {
  return {
    'x-compute-tokens': String(result.totalTokens),
    'x-total-time': totalMs.toFixed(2),
    'x-tokenization-time': result.timings.tokenizeMs.toFixed(2),
    'x-queue-time': result.timings.queueMs.toFixed(2),
    'x-inference-time': result.timings.inferenceMs.toFixed(2),
  };
}

/** The output types of `embedding_type` (/embed) and `encoding_format` (/v1/embeddings), after truncation and normalization. */
export const EMBEDDING_TYPES: readonly EmbeddingType[] = ['float', 'int8', 'uint8', 'binary', 'ubinary'];

export const embeddingTypeDescription =
  "sentence-transformers quantize_embeddings semantics: int8/uint8 scale each dimension by ranges from the model's calibration sentences (see /info); " +
  'binary/ubinary pack one sign bit per dimension (> 0), 8 to a byte, most significant bit first, binary as byte - 128';

/** Checks what JSON schema cannot express well: request-size limits and empty texts. */
export function checkTexts(texts: readonly string[], limits: ServerLimits, field: string): void {
  if (texts.length === 0) throw new ApiError('validation', `${field} must not be empty`);
  if (texts.length > limits.maxInputs) {
    throw new ApiError('payload_too_large', `${field} has ${texts.length} items; at most ${limits.maxInputs} are allowed per request`);
  }
  texts.forEach((t, i) => {
    if (t.length === 0) throw new ApiError('validation', `${field}[${i}] is an empty string`);
    if (t.length > limits.maxInputChars) {
      throw new ApiError('payload_too_large', `${field}[${i}] has ${t.length} characters; at most ${limits.maxInputChars} are allowed`);
    }
  });
}

/** The /embed route: its schema and handler, also served at TEI's root route `POST /` (tei.ts). */
export function embedRoute(app: FastifyInstance, url: string, engine: Engine, limits: ServerLimits, metrics: Metrics, summary: string): void {
  app.route<{ Body: EmbedBody }>({
    method: 'POST',
    url,
    // Refuse before the body is even parsed when the queue is full.
    onRequest: async () => engine.admit(),
    schema: {
      summary,
      tags: ['embeddings'],
      body: {
        type: 'object',
        required: ['inputs'],
        properties: {
          inputs: {
            anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }],
            description: 'One text or a list of texts',
          },
          embedding_type: { type: 'string', enum: EMBEDDING_TYPES, default: 'float', description: embeddingTypeDescription },
          ...knobProperties,
        },
      },
      response: {
        200: {
          description: 'One vector per input, in order (integers for the quantized types)',
          type: 'array',
          items: { type: 'array', items: { type: 'number' } },
        },
        ...errorResponses,
      },
    },
    handler: async (request, reply) => {
      const started = performance.now();
      const texts = typeof request.body.inputs === 'string' ? [request.body.inputs] : request.body.inputs;
      checkTexts(texts, limits, 'inputs');
      const embed = requestEmbedder(request, reply, engine, metrics, limits.requestTimeoutMs);
      const result = await embed(texts, { ...knobsFromBody(request.body), embeddingType: request.body.embedding_type });
      reply.headers(timingHeaders(result, performance.now() - started));
      return reply.type('application/json').send(vectorsJson(result.quantized ?? result.vectors));
    },
  });
}

export function embedRoutes(app: FastifyInstance, engine: Engine, limits: ServerLimits, metrics: Metrics): void {
  embedRoute(app, '/embed', engine, limits, metrics, 'Embed texts (TEI-compatible)');
}
