/** POST /api/embed: Ollama's embedding route, so the `ollama` client and `@langchain/ollama` work unchanged. */
import type { FastifyPluginAsync } from 'fastify';
import { errorResponses } from '../errors/reply.js';
import { checkTexts, listNames } from '../inputs.js';
import { embeddedTexts, knobProperties, knobsFromBody, requestEmbedder } from '../knobs.js';
import { admit, admitEarly, modelFor } from '../model-routing.js';
import { timingHeaders } from '../timing.js';
import { vectorsJson } from '../vector-json.js';
import type { RouteDeps } from './deps.js';

interface OllamaEmbedBody {
  model?: string;
  input: string | string[];
  truncate?: boolean;
  dimensions?: number | null;
  keep_alive?: string | number;
  options?: Record<string, unknown>;
}

export const ollamaPlugin: FastifyPluginAsync<RouteDeps> = async (app, { models, limits, metrics }) => {
  app.post<{ Body: OllamaEmbedBody }>(
    '/api/embed',
    {
      onRequest: admitEarly(models),
      schema: {
        summary: 'Embed texts (Ollama-compatible)',
        tags: ['embeddings'],
        body: {
          type: 'object',
          required: ['input'],
          properties: {
            model: {
              type: 'string',
              description: 'A served model by name; with one model served, any name is accepted (Ollama clients always send one)',
            },
            input: embeddedTexts,
            truncate: {
              type: 'boolean',
              default: true,
              description: "Cut inputs longer than the model's maximum; if false a too-long input is a 413",
            },
            dimensions: knobProperties.dimensions,
            keep_alive: { anyOf: [{ type: 'string' }, { type: 'number' }], description: 'Accepted and ignored (the model stays loaded)' },
            options: { type: 'object', description: 'Accepted and ignored (Ollama runner options)' },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              model: { type: 'string' },
              embeddings: { type: 'array', items: { type: 'array', items: { type: 'number' } } },
              total_duration: { type: 'integer', description: 'Nanoseconds' },
              load_duration: { type: 'integer', description: 'Nanoseconds (0: the model is always loaded)' },
              prompt_eval_count: { type: 'integer', description: 'Tokens computed' },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const started = performance.now();
      const { input } = request.body;
      const texts = typeof input === 'string' ? [input] : input;
      checkTexts(texts, limits, 'input');
      const embedder = modelFor(models, request.body.model, 'embed', { anyNameWhenSingle: true });
      await admit(models, embedder, request, reply);
      const embed = requestEmbedder(request, reply, embedder, metrics, limits.requestTimeoutMs);
      // Ollama's vectors are L2-normalized, as ours are by default.
      const result = await embed(
        texts,
        knobsFromBody({ truncate: request.body.truncate, dimensions: request.body.dimensions }),
        listNames('input', input),
      );
      const totalMs = performance.now() - started;
      reply.headers(timingHeaders(result, totalMs));
      const totalNs = Math.round(totalMs * 1e6);
      return reply
        .type('application/json')
        .send(
          `{"model":${JSON.stringify(embedder.name)},"embeddings":${vectorsJson(result.vectors)},"total_duration":${totalNs},"load_duration":0,"prompt_eval_count":${result.totalTokens}}`,
        );
    },
  );
};
