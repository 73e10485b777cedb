/**
 * The public error contract: every failure becomes `{error, error_type}` with one of the
 * documented status codes. Anything a client can send maps to a 4xx; a 5xx means a bug here.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { IndexError, type IndexErrorCode } from '../index/errors.js';
import { RuntimeError, type RuntimeErrorKind } from '../runtime/errors.js';

export type ErrorType =
  | 'validation'
  | 'payload_too_large'
  | 'overloaded'
  | 'unauthorized'
  | 'not_found'
  | 'conflict'
  | 'unavailable'
  | 'timeout'
  | 'internal';

export const STATUS: Record<ErrorType, number> = {
  validation: 422,
  payload_too_large: 413,
  overloaded: 429,
  unauthorized: 401,
  not_found: 404,
  conflict: 409,
  unavailable: 503,
  timeout: 504,
  internal: 500,
};

/** An error raised by route code with its public type already decided. */
export class ApiError extends Error {
  constructor(
    readonly type: ErrorType,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** The error body shape of every non-OpenAI route. */
export interface ErrorBody {
  error: string;
  error_type: ErrorType;
}

const FROM_RUNTIME: Record<Exclude<RuntimeErrorKind, 'cancelled'>, ErrorType> = {
  validation: 'validation',
  payload_too_large: 'payload_too_large',
  overloaded: 'overloaded',
  timeout: 'timeout',
  unavailable: 'unavailable',
};

const FROM_INDEX: Record<IndexErrorCode, ErrorType> = {
  VALIDATION: 'validation',
  NOT_FOUND: 'not_found',
  CONFLICT: 'conflict',
  // The store refuses writes it cannot make durable until a restart recovers it.
  STORAGE: 'unavailable',
  // A collection damaged on disk: the others serve; this one waits for an operator.
  UNAVAILABLE: 'unavailable',
};

/** Fastify's own client-error codes, mapped to the contract. */
const FASTIFY_CODES: Record<string, ErrorType> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'validation',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'validation',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'validation',
  FST_ERR_CTP_INVALID_JSON_BODY: 'validation',
};

export interface ClassifiedError {
  type: ErrorType;
  message: string;
  /** The request field at fault, when known (OpenAI's `param`). */
  param?: string;
  retryAfterSeconds?: number;
  /** The client went away: nothing will read the answer. */
  cancelled?: boolean;
}

function fieldOf(instancePath: string): string | undefined {
  return instancePath.split('/').filter(Boolean)[0];
}

/** Decides the public type and message of any error thrown while serving a request. */
export function classify(err: unknown): ClassifiedError {
  if (err instanceof ApiError) return { type: err.type, message: err.message, retryAfterSeconds: err.retryAfterSeconds };
  if (err instanceof IndexError) return { type: FROM_INDEX[err.code], message: err.message, ...(err.code === 'STORAGE' && { retryAfterSeconds: 5 }), ...(err.code === 'UNAVAILABLE' && { retryAfterSeconds: 60 }) };
  if (err instanceof RuntimeError) {
    if (err.kind === 'cancelled') return { type: 'unavailable', message: err.message, cancelled: true };
    return { type: FROM_RUNTIME[err.kind], message: err.message, retryAfterSeconds: err.retryAfterSeconds };
  }
  const fe = err as FastifyError;
  if (fe && Array.isArray(fe.validation)) {
    const where = fe.validationContext ?? 'body';
    // For a value that matched no branch of an anyOf, name every accepted type, not the first branch's.
    const anyOf = fe.validation.find((e) => e.keyword === 'anyOf');
    const first = anyOf ?? fe.validation[0];
    const path = first?.instancePath ? `${where}${first.instancePath.replace(/\//g, '.')}` : where;
    if (anyOf) {
      const types = fe.validation
        .filter((e) => e.keyword === 'type' && e.instancePath === anyOf.instancePath)
        .map((e) => String((e.params as { type?: unknown }).type));
      const accepted = types.length ? types.join(' or ') : 'one of the accepted forms';
      return { type: 'validation', message: `${path} must be ${accepted}`, param: fieldOf(anyOf.instancePath) };
    }
    const missing = first?.keyword === 'required' ? String((first.params as { missingProperty?: unknown }).missingProperty) : undefined;
    return { type: 'validation', message: `${path} ${first?.message ?? 'is invalid'}`, param: missing ?? fieldOf(first?.instancePath ?? '') };
  }
  if (fe?.code && FASTIFY_CODES[fe.code]) return { type: FASTIFY_CODES[fe.code]!, message: fe.message };
  if (fe instanceof SyntaxError || (typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500)) {
    return { type: fe.statusCode === 413 ? 'payload_too_large' : 'validation', message: fe.message };
  }
  return { type: 'internal', message: 'internal error' };
}

/** OpenAI's error `type` for each of our types: clients branch on the status, this is for humans. */
const OPENAI_TYPE: Record<ErrorType, string> = {
  validation: 'invalid_request_error',
  payload_too_large: 'invalid_request_error',
  not_found: 'invalid_request_error',
  conflict: 'invalid_request_error',
  unauthorized: 'invalid_request_error',
  overloaded: 'rate_limit_error',
  timeout: 'timeout',
  unavailable: 'server_error',
  internal: 'server_error',
};

/** Routes under /v1 speak OpenAI's error shape; every other route speaks the service's own. */
export function isOpenAiRoute(request: FastifyRequest): boolean {
  return request.url.startsWith('/v1/') || request.url.split('?')[0] === '/embeddings';
}

export function sendError(request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const c = classify(err);
  if (c.type === 'internal') request.log.error({ err }, 'unhandled error');
  if (c.retryAfterSeconds !== undefined) reply.header('retry-after', String(c.retryAfterSeconds));
  if (c.type === 'unauthorized') reply.header('www-authenticate', 'Bearer');
  // 499 (client closed request) keeps a vanished client's request out of the 5xx counts, and
  // closing the connection frees a socket whose peer has already gone.
  if (c.cancelled) reply.header('connection', 'close');
  const status = c.cancelled ? 499 : STATUS[c.type];
  if (isOpenAiRoute(request)) {
    const code = c.type === 'unauthorized' ? 'invalid_api_key' : c.type;
    return reply.code(status).send({ error: { message: c.message, type: OPENAI_TYPE[c.type], param: c.param ?? null, code } });
  }
  return reply.code(status).send({ error: c.message, error_type: c.type } satisfies ErrorBody);
}

export const errorBodySchema = {
  type: 'object',
  required: ['error', 'error_type'],
  properties: {
    error: { type: 'string', description: 'Human-readable message' },
    error_type: { type: 'string', enum: Object.keys(STATUS) },
  },
} as const;

/** Error responses every route may give, for the OpenAPI document and the serializer. */
export const errorResponses = Object.fromEntries(
  ([401, 404, 409, 413, 422, 429, 503, 504] as const).map((code) => [code, { description: `Error (${code})`, ...errorBodySchema }]),
);

const openAiErrorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['message', 'type', 'code'],
      properties: {
        message: { type: 'string' },
        type: { type: 'string' },
        param: { type: ['string', 'null'] },
        code: { type: ['string', 'null'] },
      },
    },
  },
} as const;

/** The same responses in OpenAI's error shape, for /v1 routes. */
export const openAiErrorResponses = Object.fromEntries(
  ([401, 404, 413, 422, 429, 503, 504] as const).map((code) => [code, { description: `Error (${code})`, ...openAiErrorSchema }]),
);
