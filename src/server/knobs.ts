/**
 * The knobs shared by /embed, /v1/embeddings and /search: their JSON schema, and their
 * translation (plus the request's deadline and disconnect signal) into engine options.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Embedder, EmbedOptions, EmbedResult, RerankOptions, RerankResult } from '../runtime/embedder.js';
import { ApiError } from './errors/catalogue.js';
import { type InputNames, nameInputs } from './inputs.js';
import type { Metrics } from './metrics.js';

const nullable = (schema: Record<string, unknown>): Record<string, unknown> => ({ ...schema, type: [schema.type as string, 'null'] });

/** The JSON schema of `inputs` / `input` on the embedding routes. */
export const textOrTexts = {
  anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }],
  description: 'One text or a list of texts',
} as const;

/** What every route that embeds or reranks does with a text it cannot read (the OpenAPI descriptions say it). */
export const EMPTY_INPUT_RULE =
  'A text with nothing the model can read (empty, only whitespace, control or invisible characters such as U+200B, ' +
  'unpaired surrogates, or only characters the tokenizer drops) is refused: 422 EMPTY_INPUT naming it';

/** Texts that are embedded: one or several. */
export const embeddedTexts = { ...textOrTexts, description: `One text or a list of texts. ${EMPTY_INPUT_RULE}` } as const;

/** A request body of `inputs` (one text or several; embedded unless `inputs` says otherwise) and the given other fields. */
export function inputsBody<P extends Record<string, unknown>>(properties: P, inputs: object = embeddedTexts) {
  return { type: 'object', required: ['inputs'], properties: { inputs, ...properties } } as const;
}

/** JSON-schema properties of the shared knobs (null means "not given", as Python clients send it). */
export const knobProperties = {
  dimensions: nullable({ type: 'integer', minimum: 1, description: 'Matryoshka: keep the first N dimensions, then renormalize' }),
  layer: nullable({
    type: 'integer',
    minimum: 1,
    description: '2D Matryoshka: pool the output of this transformer layer; later layers are not computed',
  }),
  prompt_name: nullable({ type: 'string', description: "A named prompt from the model's config_sentence_transformers.json" }),
  instruction: nullable({ type: 'string', description: "A task instruction, formatted with the model's instruction template" }),
  token_prepending: nullable({ type: 'boolean', description: 'Token Prepending (decoder-only models that declare it)' }),
  normalize: nullable({ type: 'boolean', default: true, description: 'L2-normalize the output' }),
  truncate: nullable({
    type: 'boolean',
    default: true,
    description: 'Cut inputs longer than the maximum; if false a too-long input is a 413',
  }),
  truncation_direction: nullable({
    type: 'string',
    enum: ['right', 'left', 'Right', 'Left', 'RIGHT', 'LEFT', null],
    description: 'Which end to cut (case-insensitive)',
  }),
} as const;

export interface KnobBody {
  dimensions?: number | null;
  layer?: number | null;
  prompt_name?: string | null;
  instruction?: string | null;
  token_prepending?: boolean | null;
  normalize?: boolean | null;
  truncate?: boolean | null;
  truncation_direction?: string | null;
}

const orUndefined = <T>(v: T | null | undefined): T | undefined => (v === null ? undefined : v);

export function knobsFromBody(body: KnobBody): EmbedOptions {
  return {
    dimensions: orUndefined(body.dimensions),
    layer: orUndefined(body.layer),
    promptName: orUndefined(body.prompt_name),
    instruction: orUndefined(body.instruction),
    tokenPrepending: orUndefined(body.token_prepending),
    normalize: orUndefined(body.normalize),
    truncate: orUndefined(body.truncate),
    truncationDirection: body.truncation_direction ? (body.truncation_direction.toLowerCase() as 'left' | 'right') : undefined,
  };
}

/** The request's time budget: header `x-request-timeout-ms`, else the configured default. */
export function requestTimeoutMs(request: FastifyRequest, defaultTimeoutMs: number): number {
  const header = request.headers['x-request-timeout-ms'];
  if (header === undefined) return defaultTimeoutMs;
  const raw = Array.isArray(header) ? header[0]! : header;
  if (!/^\d{1,9}$/.test(raw.trim()) || Number(raw) < 1) throw new ApiError('INVALID_REQUEST_TIMEOUT');
  return Number(raw);
}

/**
 * The request's deadline (header `x-request-timeout-ms`, else the configured default) and a signal
 * that fires when the client disconnects before the answer is written.
 */
function requestLifetime(
  request: FastifyRequest,
  reply: FastifyReply,
  defaultTimeoutMs: number,
): { deadline: number; signal: AbortSignal } {
  const timeoutMs = requestTimeoutMs(request, defaultTimeoutMs);
  const controller = new AbortController();
  // The request stream closes as soon as the body is read; the response closing before it was
  // fully written is what says the client went away.
  reply.raw.on('close', () => {
    if (!reply.raw.writableEnded) controller.abort();
  });
  return { deadline: performance.now() + timeoutMs, signal: controller.signal };
}

/**
 * Embedding on behalf of one HTTP request: every call shares the request's single deadline and
 * disconnect signal, and its result is counted in the metrics.
 */
export function requestEmbedder(
  request: FastifyRequest,
  reply: FastifyReply,
  embedder: Embedder,
  metrics: Metrics,
  defaultTimeoutMs: number,
): (texts: readonly string[], opts: EmbedOptions, names: InputNames) => Promise<EmbedResult> {
  const { deadline, signal } = requestLifetime(request, reply, defaultTimeoutMs);
  return async (texts, opts, names) => {
    // The first embed call takes the request's admission (its queue reservation), if it has one.
    const admission = request.admission;
    request.admission = undefined;
    const result = await embedder.embed(texts, { ...opts, deadline, signal, admission }).catch((err: unknown) => {
      throw nameInputs(err, names);
    });
    metrics.observeEmbed(embedder.name, result);
    return result;
  };
}

/** Reranking on behalf of one HTTP request, under its deadline and disconnect signal. */
export function requestReranker(
  request: FastifyRequest,
  reply: FastifyReply,
  embedder: Embedder,
  metrics: Metrics,
  defaultTimeoutMs: number,
): (query: string, documents: readonly string[], names: InputNames, opts?: RerankOptions) => Promise<RerankResult> {
  const { deadline, signal } = requestLifetime(request, reply, defaultTimeoutMs);
  return async (query, documents, names, opts = {}) => {
    const admission = request.admission;
    request.admission = undefined;
    const result = await embedder.rerank(query, documents, { ...opts, deadline, signal, admission }).catch((err: unknown) => {
      throw nameInputs(err, names);
    });
    metrics.observeEmbed(embedder.name, result);
    return result;
  };
}

/** The `model` request field, in every computing route's schema. */
export const modelProperty = {
  model: {
    type: ['string', 'null'],
    description: 'A served model by name (GET /v1/models lists them); default: the first served model of the kind needed',
  },
} as const;
