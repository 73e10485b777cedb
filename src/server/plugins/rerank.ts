/**
 * Reranking with a cross-encoder: POST /rerank in text-embeddings-inference's shape and
 * POST /v1/rerank in the Cohere/Jina shape that vLLM also serves (with OpenAI's error shape, as
 * every /v1 route). Both score every (query, text) pair with the model's logit (sigmoid unless raw
 * scores are asked for) and answer best first.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Embedder, RerankOptions, RerankResult } from '../../runtime/embedder.js';
import type { ServerLimits } from '../app.js';
import { ApiError } from '../errors/catalogue.js';
import { errorResponses, openAiErrorResponses, sendOpenAiError } from '../errors/reply.js';
import { checkTexts, type InputNames } from '../inputs.js';
import { EMPTY_INPUT_RULE, modelProperty, requestReranker } from '../knobs.js';
import { admit, admitEarly, modelFor } from '../model-routing.js';
import { timingHeaders } from '../timing.js';
import type { RouteDeps } from './deps.js';

interface TeiRerankBody {
  query: string;
  texts: string[];
  raw_scores?: boolean | null;
  return_text?: boolean | null;
  truncate?: boolean | null;
  truncation_direction?: string | null;
  model?: string | null;
}

interface CohereRerankBody {
  model?: string | null;
  query: string;
  documents: Array<string | { text: string }>;
  top_n?: number | null;
  return_documents?: boolean | null;
}

function checkQuery(query: string, limits: ServerLimits): void {
  if (query.length > limits.maxInputChars) throw new ApiError('QUERY_TOO_MANY_CHARS', query.length, limits.maxInputChars);
}

/** Indices of `scores` from best to worst (ties keep input order). */
export function bestFirst(scores: readonly number[]): number[] {
  return scores.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
}

export const rerankPlugin: FastifyPluginAsync<RouteDeps> = async (app, { models, limits, metrics }) => {
  const onRequest = admitEarly(models);

  /** What both routes do: check the inputs, pick and admit the reranker, score, and answer the timings. */
  const rerank = async (
    request: FastifyRequest,
    reply: FastifyReply,
    r: { model?: string | null; query: string; texts: string[]; field: string; names: InputNames; opts?: RerankOptions },
  ): Promise<{ engine: Embedder; result: RerankResult }> => {
    const started = performance.now();
    checkQuery(r.query, limits);
    checkTexts(r.texts, limits, r.field);
    const engine = modelFor(models, r.model, 'rerank');
    await admit(models, engine, request, reply);
    const result = await requestReranker(request, reply, engine, metrics, limits.requestTimeoutMs)(r.query, r.texts, r.names, r.opts);
    reply.headers(timingHeaders(result, performance.now() - started));
    return { engine, result };
  };

  app.post<{ Body: TeiRerankBody }>(
    '/rerank',
    {
      onRequest,
      schema: {
        summary: 'Rerank texts against a query with a cross-encoder (TEI-compatible)',
        tags: ['rerank'],
        body: {
          type: 'object',
          required: ['query', 'texts'],
          properties: {
            query: { type: 'string', description: EMPTY_INPUT_RULE },
            texts: { type: 'array', items: { type: 'string' }, description: `The texts to score against the query. ${EMPTY_INPUT_RULE}` },
            raw_scores: { type: ['boolean', 'null'], default: false, description: 'Return the logits instead of sigmoid(logit)' },
            return_text: { type: ['boolean', 'null'], default: false, description: 'Echo each text' },
            truncate: {
              type: ['boolean', 'null'],
              default: true,
              description: 'Cut pairs longer than the maximum (the text first); if false a too-long pair is a 413',
            },
            truncation_direction: {
              type: ['string', 'null'],
              description: 'Accepted for TEI clients; pairs are always cut at the end of the text',
            },
            ...modelProperty,
          },
        },
        response: {
          200: {
            description: 'One entry per text, best first',
            type: 'array',
            items: {
              type: 'object',
              required: ['index', 'score'],
              properties: { index: { type: 'integer' }, score: { type: 'number' }, text: { type: 'string' } },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const { result } = await rerank(request, reply, {
        model: b.model,
        query: b.query,
        texts: b.texts,
        field: 'texts',
        names: (i) => `texts[${i}]`,
        opts: { truncate: b.truncate ?? true },
      });
      const scores = b.raw_scores ? result.logits : result.scores;
      return bestFirst(scores).map((index) => ({ index, score: scores[index]!, ...(b.return_text && { text: b.texts[index] }) }));
    },
  );

  // Under /v1: OpenAI's error shape, as every /v1 route.
  await app.register(async (v1) => {
    v1.setErrorHandler((err, request, reply) => sendOpenAiError(request, reply, err));
    v1.post<{ Body: CohereRerankBody }>(
      '/v1/rerank',
      {
        onRequest,
        schema: {
          summary: 'Rerank documents against a query (Cohere/Jina shape, as vLLM serves it)',
          tags: ['rerank'],
          body: {
            type: 'object',
            required: ['query', 'documents'],
            properties: {
              model: { type: ['string', 'null'], description: 'A served reranker (default: the first served)' },
              query: { type: 'string', description: EMPTY_INPUT_RULE },
              documents: {
                type: 'array',
                items: { anyOf: [{ type: 'string' }, { type: 'object', required: ['text'], properties: { text: { type: 'string' } } }] },
                description: `Texts, or objects with a text field. ${EMPTY_INPUT_RULE}`,
              },
              top_n: { type: ['integer', 'null'], minimum: 1, description: 'Results returned (default: all)' },
              return_documents: { type: ['boolean', 'null'], default: false },
            },
          },
          response: {
            200: {
              type: 'object',
              properties: {
                model: { type: 'string' },
                results: {
                  type: 'array',
                  items: {
                    type: 'object',
                    required: ['index', 'relevance_score'],
                    properties: {
                      index: { type: 'integer' },
                      relevance_score: { type: 'number' },
                      document: { type: 'object', properties: { text: { type: 'string' } } },
                    },
                  },
                },
                usage: { type: 'object', properties: { total_tokens: { type: 'integer' } } },
              },
            },
            ...openAiErrorResponses,
          },
        },
      },
      async (request, reply) => {
        const b = request.body;
        const texts = b.documents.map((d) => (typeof d === 'string' ? d : d.text));
        const { engine, result } = await rerank(request, reply, {
          model: b.model,
          query: b.query,
          texts,
          field: 'documents',
          names: (i) => (typeof b.documents[i] === 'string' ? `documents[${i}]` : `documents[${i}].text`),
        });
        const order = bestFirst(result.scores).slice(0, b.top_n ?? texts.length);
        return {
          model: engine.name,
          results: order.map((index) => ({
            index,
            relevance_score: result.scores[index]!,
            ...(b.return_documents && { document: { text: texts[index]! } }),
          })),
          usage: { total_tokens: result.totalTokens },
        };
      },
    );
  });
};
