/**
 * text-embeddings-inference's other routes, in TEI's shapes, so TEI clients work unchanged:
 * `POST /` (TEI's root route, which clients posting to the endpoint URL itself use), `/tokenize`,
 * `/decode` and `/similarity`.
 */
import type { FastifyPluginAsync } from 'fastify';
import { cosine } from '../../pooling/index.js';
import { ApiError } from '../errors/catalogue.js';
import { errorResponses } from '../errors/reply.js';
import { checkTexts } from '../inputs.js';
import {
  EMPTY_INPUT_RULE,
  inputsBody,
  type KnobBody,
  knobProperties,
  knobsFromBody,
  modelProperty,
  requestEmbedder,
  textOrTexts,
} from '../knobs.js';
import { admit, admitEarly, modelFor } from '../model-routing.js';
import { timingHeaders } from '../timing.js';
import type { RouteDeps } from './deps.js';
import { embedRoute } from './embed.js';

interface TokenizeBody {
  inputs: string | string[];
  add_special_tokens?: boolean;
  prompt_name?: string | null;
  model?: string | null;
}

interface DecodeBody {
  ids: number[] | number[][];
  skip_special_tokens?: boolean;
  model?: string | null;
}

interface SimilarityBody extends KnobBody {
  inputs: { source_sentence: string; sentences: string[] };
  model?: string | null;
}

const tokenSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    text: { type: 'string', description: 'The text the token covers (the token itself for a special token)' },
    special: { type: 'boolean' },
    start: {
      type: ['integer', 'null'],
      description: 'Character (code point) offset of the first covered character; null for special tokens',
    },
    stop: { type: ['integer', 'null'], description: 'Character offset just past the last covered character; null for special tokens' },
  },
} as const;

export const teiPlugin: FastifyPluginAsync<RouteDeps> = async (app, deps) => {
  const { models, limits, metrics } = deps;
  embedRoute(app, '/', deps, "Embed texts (TEI's root route, same as /embed)");

  app.post<{ Body: TokenizeBody }>(
    '/tokenize',
    {
      schema: {
        summary: 'Tokenize texts (TEI-compatible): every token with its offsets, untruncated',
        tags: ['embeddings'],
        body: inputsBody(
          {
            add_special_tokens: { type: 'boolean', default: true },
            prompt_name: knobProperties.prompt_name,
            ...modelProperty,
          },
          { ...textOrTexts, description: 'One text or a list of texts (any text, even one that tokenizes to nothing)' },
        ),
        response: {
          200: { description: 'Per input, its tokens', type: 'array', items: { type: 'array', items: tokenSchema } },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const texts = typeof request.body.inputs === 'string' ? [request.body.inputs] : request.body.inputs;
      checkTexts(texts, limits, 'inputs');
      return modelFor(models, request.body.model, 'embed').tokenDetails(texts, {
        promptName: request.body.prompt_name ?? undefined,
        addSpecialTokens: request.body.add_special_tokens,
      });
    },
  );

  app.post<{ Body: DecodeBody }>(
    '/decode',
    {
      schema: {
        summary: 'Token ids back to text (TEI-compatible)',
        tags: ['embeddings'],
        body: {
          type: 'object',
          required: ['ids'],
          properties: {
            ids: {
              anyOf: [
                { type: 'array', items: { type: 'integer' } },
                { type: 'array', items: { type: 'array', items: { type: 'integer' } } },
              ],
              description: 'One sequence of token ids, or a list of them',
            },
            skip_special_tokens: { type: 'boolean', default: true },
            ...modelProperty,
          },
        },
        response: { 200: { description: 'One text per sequence', type: 'array', items: { type: 'string' } }, ...errorResponses },
      },
    },
    async (request) => {
      const { ids } = request.body;
      const sequences = ids.length > 0 && Array.isArray(ids[0]) ? (ids as number[][]) : [ids as number[]];
      if (sequences.length > limits.maxInputs) {
        throw new ApiError('TOO_MANY_INPUTS', 'ids', sequences.length, limits.maxInputs);
      }
      return modelFor(models, request.body.model, 'embed').decode(sequences, request.body.skip_special_tokens);
    },
  );

  app.post<{ Body: SimilarityBody }>(
    '/similarity',
    {
      onRequest: admitEarly(models),
      schema: {
        summary: 'Cosine similarity of a source sentence to each of several sentences (TEI-compatible)',
        tags: ['embeddings'],
        body: {
          type: 'object',
          required: ['inputs'],
          properties: {
            inputs: {
              type: 'object',
              required: ['source_sentence', 'sentences'],
              description: EMPTY_INPUT_RULE,
              properties: { source_sentence: { type: 'string' }, sentences: { type: 'array', items: { type: 'string' } } },
            },
            ...knobProperties,
            ...modelProperty,
          },
        },
        response: { 200: { description: 'One score per sentence, in order', type: 'array', items: { type: 'number' } }, ...errorResponses },
      },
    },
    async (request, reply) => {
      const started = performance.now();
      const { source_sentence: source, sentences } = request.body.inputs;
      checkTexts(sentences, limits, 'inputs.sentences');
      checkTexts([source, ...sentences], { ...limits, maxInputs: limits.maxInputs + 1 }, 'inputs');
      const embedder = modelFor(models, request.body.model, 'embed');
      await admit(models, embedder, request, reply);
      const embed = requestEmbedder(request, reply, embedder, metrics, limits.requestTimeoutMs);
      const result = await embed([source, ...sentences], knobsFromBody(request.body), (i) =>
        i === 0 ? 'inputs.source_sentence' : `inputs.sentences[${i - 1}]`,
      );
      reply.headers(timingHeaders(result, performance.now() - started));
      const [first, ...rest] = result.vectors;
      return rest.map((v) => cosine(first!, v));
    },
  );
};
