/**
 * The public error contract: every failure becomes `{error, error_type, error_code}` (or OpenAI's
 * shape on the OpenAI routes) with one of the documented status codes. Anything a client can send
 * maps to a 4xx; a 5xx means a bug here. Which code and status an error gets is decided in
 * `catalogue.ts`; this file only classifies thrown errors and writes the responses.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { IndexError } from '../../index/errors.js';
import { RuntimeError } from '../../runtime/errors.js';
import {
  ApiError,
  type ErrorType,
  INDEX_ERROR_HTTP,
  queueRetryAfterSeconds,
  runtimeErrorHttp,
  SERVER_ERRORS,
  type ServerErrorCode,
  STATUS,
} from './catalogue.js';

/** The error body shape of every non-OpenAI route. */
export interface ErrorBody {
  error: string;
  error_type: ErrorType;
  error_code: string;
}

/** Fastify's own client-error codes, as catalogue codes. */
const FASTIFY_CODES: Record<string, ServerErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'EMPTY_JSON_BODY',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'INVALID_CONTENT_LENGTH',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
};

export interface ClassifiedError {
  code: string;
  type: ErrorType;
  message: string;
  /** The request field at fault, when known (OpenAI's `param`). */
  param?: string;
  retryAfterSeconds?: number;
  openAiCode?: string;
  /** The client went away: nothing will read the answer. */
  cancelled?: boolean;
}

function fieldOf(instancePath: string): string | undefined {
  return instancePath.split('/').filter(Boolean)[0];
}

const server = (code: ServerErrorCode, message: string, param?: string): ClassifiedError => {
  const { type, retryAfterSeconds, openAiCode } = SERVER_ERRORS[code] as {
    type: ErrorType;
    retryAfterSeconds?: number;
    openAiCode?: string;
  };
  return {
    code,
    type,
    message,
    ...(param !== undefined && { param }),
    ...(retryAfterSeconds !== undefined && { retryAfterSeconds }),
    ...(openAiCode && { openAiCode }),
  };
};

/** A JSON pointer as the request field it names: `/inputs/1/text` → `body.inputs[1].text`. */
function fieldPath(where: string, instancePath: string): string {
  return `${where}${instancePath.replace(/\/(\d+)(?=\/|$)/g, '[$1]').replace(/\//g, '.')}`;
}

/** A schema validation failure, with the message naming the field (and array element) and every accepted type. */
function fromSchema(fe: FastifyError): ClassifiedError {
  const validation = fe.validation!;
  const where = fe.validationContext ?? 'body';
  // For a value that matched no branch of an anyOf, name every accepted type, not the first branch's.
  const anyOf = validation.find((e) => e.keyword === 'anyOf');
  const first = anyOf ?? validation[0];
  const path = fieldPath(where, first?.instancePath ?? '');
  if (anyOf) {
    const types = validation
      .filter((e) => e.keyword === 'type' && e.instancePath === anyOf.instancePath)
      .map((e) => String((e.params as { type?: unknown }).type));
    const accepted = types.length ? types.join(' or ') : 'one of the accepted forms';
    // An array that failed on one element: name the element (`body.inputs[1] must be string`).
    const inner = validation.find((e) => e.keyword === 'type' && e.instancePath.startsWith(`${anyOf.instancePath}/`));
    if (inner) {
      return server(
        'REQUEST_VALIDATION',
        `${fieldPath(where, inner.instancePath)} must be ${String((inner.params as { type?: unknown }).type)}`,
        fieldOf(anyOf.instancePath),
      );
    }
    return server('REQUEST_VALIDATION', `${path} must be ${accepted}`, fieldOf(anyOf.instancePath));
  }
  const missing = first?.keyword === 'required' ? String((first.params as { missingProperty?: unknown }).missingProperty) : undefined;
  return server('REQUEST_VALIDATION', `${path} ${first?.message ?? 'is invalid'}`, missing ?? fieldOf(first?.instancePath ?? ''));
}

/** Decides the public code, type and message of any error thrown while serving a request. */
export function classify(err: unknown): ClassifiedError {
  if (err instanceof ApiError)
    return server(err.code, err.message, err.code === 'MODEL_NOT_FOUND' || err.code === 'WRONG_MODEL_TASK' ? 'model' : undefined);
  if (err instanceof IndexError) {
    const { code, type, retryAfterSeconds } = INDEX_ERROR_HTTP[err.code];
    return { code, type, message: err.message, ...(retryAfterSeconds !== undefined && { retryAfterSeconds }) };
  }
  if (err instanceof RuntimeError) {
    const { type, retryAfterSeconds, openAiCode } = runtimeErrorHttp(err.code);
    const retry = err.code === 'QUEUE_FULL' || err.code === 'DEADLINE_BEHIND_QUEUE' ? queueRetryAfterSeconds(err) : retryAfterSeconds;
    return {
      code: err.code,
      type,
      message: err.message,
      ...(retry !== undefined && { retryAfterSeconds: retry }),
      ...(err.code === 'CANCELLED' && { cancelled: true }),
      ...(openAiCode && { openAiCode }),
      ...(err.code === 'WRONG_TASK' && { param: 'model' }),
      // OpenAI's `param` is the top-level field (`input`), the message names the element.
      ...(err.details.field !== undefined && { param: err.details.field.split(/[.[]/)[0] }),
    };
  }
  const fe = err as FastifyError;
  if (fe && Array.isArray(fe.validation)) return fromSchema(fe);
  if (fe?.code && FASTIFY_CODES[fe.code]) return server(FASTIFY_CODES[fe.code]!, fe.message);
  if (fe instanceof SyntaxError || (typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500)) {
    return server(fe.statusCode === 413 ? 'BODY_TOO_LARGE' : 'BAD_REQUEST', fe.message);
  }
  return server('INTERNAL', SERVER_ERRORS.INTERNAL.message);
}

/** Headers and status shared by both error shapes; logs what is a bug. */
function prepare(request: FastifyRequest, reply: FastifyReply, err: unknown): ClassifiedError {
  const c = classify(err);
  if (c.type === 'internal') request.log.error({ err }, 'unhandled error');
  if (c.retryAfterSeconds !== undefined) reply.header('retry-after', String(c.retryAfterSeconds));
  if (c.type === 'unauthorized') reply.header('www-authenticate', 'Bearer');
  // 499 (client closed request) keeps a vanished client's request out of the 5xx counts, and
  // closing the connection frees a socket whose peer has already gone.
  if (c.cancelled) reply.header('connection', 'close');
  reply.code(c.cancelled ? 499 : STATUS[c.type]);
  return c;
}

/** The service's own error shape: the error handler of every route outside the OpenAI plugin. */
export function sendError(request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const c = prepare(request, reply, err);
  return reply.send({ error: c.message, error_type: c.type, error_code: c.code } satisfies ErrorBody);
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

/** OpenAI's error shape: the error handler of the OpenAI plugin. */
export function sendOpenAiError(request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const c = prepare(request, reply, err);
  return reply.send({ error: { message: c.message, type: OPENAI_TYPE[c.type], param: c.param ?? null, code: c.openAiCode ?? c.type } });
}

export const errorBodySchema = {
  type: 'object',
  required: ['error', 'error_type'],
  properties: {
    error: { type: 'string', description: 'Human-readable message' },
    error_type: { type: 'string', enum: Object.keys(STATUS) },
    error_code: { type: 'string', description: 'Stable code naming the exact condition (the error catalogue)' },
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
