/** POST /embed: TEI-compatible embedding (also TEI's root route `POST /`, in tei.ts). */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { EmbeddingType } from '../../pooling/index.js';
import { errorResponses } from '../errors/reply.js';
import { checkTexts, listNames } from '../inputs.js';
import { inputsBody, type KnobBody, knobProperties, knobsFromBody, modelProperty, requestEmbedder } from '../knobs.js';
import { admit, admitEarly, modelFor } from '../model-routing.js';
import { timingHeaders } from '../timing.js';
import { vectorsJson } from '../vector-json.js';
import type { RouteDeps } from './deps.js';

interface EmbedBody extends KnobBody {
  inputs: string | string[];
  embedding_type?: EmbeddingType;
  model?: string | null;
}

/** The output types of `embedding_type` (/embed) and `encoding_format` (/v1/embeddings), after truncation and normalization. */
export const EMBEDDING_TYPES: readonly EmbeddingType[] = ['float', 'int8', 'uint8', 'binary', 'ubinary'];

export const embeddingTypeDescription =
  "sentence-transformers quantize_embeddings semantics: int8/uint8 scale each dimension by ranges from the model's calibration sentences (see /info); " +
  'binary/ubinary pack one sign bit per dimension (> 0), 8 to a byte, most significant bit first, binary as byte - 128';

/** The /embed route: its schema and handler, also served at TEI's root route `POST /` (tei.ts). */
export function embedRoute(app: FastifyInstance, url: string, { models, limits, metrics }: RouteDeps, summary: string): void {
  app.route<{ Body: EmbedBody }>({
    method: 'POST',
    url,
    // Refuse before the body is even parsed when the queue is full.
    onRequest: admitEarly(models),
    schema: {
      summary,
      tags: ['embeddings'],
      body: inputsBody({
        embedding_type: { type: 'string', enum: EMBEDDING_TYPES, default: 'float', description: embeddingTypeDescription },
        ...knobProperties,
        ...modelProperty,
      }),
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
      const embedder = modelFor(models, request.body.model, 'embed');
      await admit(models, embedder, request, reply);
      const embed = requestEmbedder(request, reply, embedder, metrics, limits.requestTimeoutMs);
      const result = await embed(
        texts,
        { ...knobsFromBody(request.body), embeddingType: request.body.embedding_type },
        listNames('inputs', request.body.inputs),
      );
      reply.headers(timingHeaders(result, performance.now() - started));
      return reply.type('application/json').send(vectorsJson(result.quantized ?? result.vectors));
    },
  });
}

export const embedPlugin: FastifyPluginAsync<RouteDeps> = async (app, deps) => {
  embedRoute(app, '/embed', deps, 'Embed texts (TEI-compatible)');
};
