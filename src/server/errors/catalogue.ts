/**
 * The error catalogue: every error the service can return, declared once with its stable code
 * (`error_code` in responses), its public type (`error_type`, which fixes the HTTP status), and,
 * for errors the server raises itself, the message template. Errors raised by the runtime and the
 * store are mapped here too, in one table each, so a code's status is decided in this file only.
 *
 * To add an error: add one entry below, then `throw new ApiError('MY_CODE', ...args)`.
 */
import type { IndexErrorCode } from '../../index/errors.js';
import type { RuntimeError, RuntimeErrorCode } from '../../runtime/errors.js';

/** The public error types (../shared/API.md); each has one HTTP status. */
export const STATUS = {
  validation: 422,
  payload_too_large: 413,
  overloaded: 429,
  unauthorized: 401,
  not_found: 404,
  conflict: 409,
  unavailable: 503,
  timeout: 504,
  internal: 500,
} as const;

export type ErrorType = keyof typeof STATUS;

export interface CatalogueEntry {
  type: ErrorType;
  /** The message, or a template filled with the arguments given where the error is raised. */
  message?: string | ((...args: never[]) => string);
  /** Sent as `Retry-After` (seconds). */
  retryAfterSeconds?: number;
  /** OpenAI's `error.code` on /v1 routes, where it differs from `error_type`. */
  openAiCode?: string;
}

const declare = <T extends Record<string, CatalogueEntry>>(entries: T): T => entries;

/** Errors the HTTP layer raises itself. */
export const SERVER_ERRORS = declare({
  REQUEST_VALIDATION: { type: 'validation', message: 'the request does not match the schema' },
  INVALID_JSON: { type: 'validation', message: (detail: string) => `the body is not valid JSON: ${detail}` },
  EMPTY_JSON_BODY: { type: 'validation', message: 'the request body is empty; send a JSON document' },
  JSON_TOO_DEEP: {
    type: 'validation',
    message: (max: number, at: number) => `the JSON body nests deeper than ${max} levels (at byte ${at})`,
  },
  PROTO_KEY: { type: 'validation', message: (path: string) => `${path} is a "__proto__" key, which is not accepted anywhere` },
  UNSUPPORTED_MEDIA_TYPE: { type: 'validation', message: 'the content type is not supported; send application/json' },
  INVALID_CONTENT_LENGTH: { type: 'validation', message: 'the content-length header is invalid' },
  MALFORMED_HTTP: { type: 'validation', message: (detail: string) => `malformed HTTP request (${detail})` },
  REQUEST_READ_TIMEOUT: {
    type: 'validation',
    message: 'the request (headers and body) was not received in time; the connection is closed',
  },
  BAD_URL: { type: 'validation', message: 'the URL is not valid (bad percent-encoding)' },
  FRAMEWORK_REJECTED: { type: 'validation', message: (detail: string) => detail },
  BAD_REQUEST: { type: 'validation', message: 'the request is malformed' },
  HEADERS_TOO_LARGE: { type: 'payload_too_large', message: 'the request headers are larger than the server accepts (16 KiB)' },
  BODY_TOO_LARGE: { type: 'payload_too_large', message: 'the body is larger than the limit' },
  INPUTS_EMPTY: { type: 'validation', message: (field: string) => `${field} must not be empty` },
  TOO_MANY_INPUTS: {
    type: 'payload_too_large',
    message: (field: string, n: number, max: number) => `${field} has ${n} items; at most ${max} are allowed per request`,
  },
  INPUT_TOO_MANY_CHARS: {
    type: 'payload_too_large',
    message: (field: string, i: number, n: number, max: number) => `${field}[${i}] has ${n} characters; at most ${max} are allowed`,
  },
  TOKEN_IDS_NOT_SUPPORTED: {
    type: 'validation',
    message:
      'input must be text: token-id arrays are ids of another tokenizer and cannot be embedded here. ' +
      'Send the strings themselves (in Python LangChain: OpenAIEmbeddings(check_embedding_ctx_length=False))',
  },
  INVALID_REQUEST_TIMEOUT: { type: 'validation', message: 'x-request-timeout-ms must be a positive integer number of milliseconds' },
  DOCUMENT_NEEDS_TEXT_OR_VECTOR: { type: 'validation', message: (i: number) => `documents[${i}] needs text or vector` },
  VECTOR_LENGTH_MISMATCH: {
    type: 'validation',
    message: (i: number, n: number, dims: number) => `documents[${i}].vector has length ${n}; this collection stores ${dims} dimensions`,
  },
  SEARCH_TARGET_CONFLICT: { type: 'validation', message: 'give either collection or candidates, not both' },
  SEARCH_TARGET_MISSING: { type: 'validation', message: 'give collection (to search an index) or candidates (to rank a list)' },
  QUERY_XOR_VECTOR: { type: 'validation', message: 'give exactly one of query (text) or vector' },
  CANDIDATES_NEED_QUERY: { type: 'validation', message: 'candidates mode needs query (text)' },
  COLLECTION_ONLY_FIELD: { type: 'validation', message: (field: string) => `${field} applies to collection search only` },
  CONTRADICTS_COLLECTION: { type: 'validation', message: (what: string) => what },
  INDEX_DIMENSIONS_TOO_LARGE: {
    type: 'validation',
    message: (indexDims: number, dims: number) => `index_dimensions (${indexDims}) must not exceed dimensions (${dims})`,
  },
  MODE_NEEDS_QUERY: { type: 'validation', message: (mode: string) => `mode "${mode}" needs query (text): the lexical side searches words` },
  MODE_NEEDS_LEXICAL: {
    type: 'validation',
    message: (mode: string, collection: string) =>
      `mode "${mode}" needs a lexical index; collection ${collection} was created without "lexical"`,
  },
  DOCUMENT_NOT_FOUND: {
    type: 'not_found',
    message: (id: string, collection: string) => `no document ${JSON.stringify(id)} in collection ${collection}`,
  },
  ROUTE_NOT_FOUND: { type: 'not_found', message: (method: string, path: string) => `no route ${method} ${path}` },
  API_KEY_MISSING: { type: 'unauthorized', message: 'missing API key: send "Authorization: Bearer <key>"', openAiCode: 'invalid_api_key' },
  API_KEY_INVALID: { type: 'unauthorized', message: 'invalid API key', openAiCode: 'invalid_api_key' },
  NOT_READY: { type: 'unavailable', message: 'the model is not ready yet', retryAfterSeconds: 1 },
  CONNECTION_LIMIT: {
    type: 'unavailable',
    message: (max: number) => `the server has reached its connection limit (${max}); retry later`,
    retryAfterSeconds: 1,
  },
  SERVER_CLOSING: { type: 'unavailable', message: 'the server is shutting down; retry on another instance', retryAfterSeconds: 1 },
  EVENT_LOOP_LAGGING: { type: 'unavailable', message: 'the server is overloaded (event loop lagging); retry later', retryAfterSeconds: 1 },
  INVALID_MIN_STORE_SEQ: {
    type: 'validation',
    message: 'x-min-store-seq must be a non-negative integer (the x-store-seq a write returned)',
  },
  STORE_SEQ_NOT_REACHED: {
    type: 'timeout',
    message: (applied: number, wanted: number) =>
      `this replica had applied the store's changes up to ${applied}, not ${wanted}, when the request's deadline passed`,
  },
  REPLICA_LOADING: {
    type: 'unavailable',
    message: (applied: number, head: number) => `this replica is still loading collections from the store (applied ${applied} of ${head})`,
    retryAfterSeconds: 1,
  },
  MODEL_NOT_FOUND: {
    type: 'not_found',
    message: (name: string, served: string) => `model ${JSON.stringify(name)} is not served (served: ${served})`,
    openAiCode: 'model_not_found',
  },
  WRONG_MODEL_TASK: {
    type: 'validation',
    message: (name: string, kind: string, wanted: string, served: string) =>
      `model ${name} is ${kind}; cannot ${wanted} it (served: ${served})`,
    openAiCode: 'wrong_model_task',
  },
  NO_MODEL_FOR_TASK: { type: 'validation', message: (kind: string, served: string) => `no ${kind} is served (served: ${served})` },
  COLLECTION_MODEL_NOT_SERVED: {
    type: 'unavailable',
    message: (collection: string, model: string, served: string) =>
      `collection ${collection} was created with model ${JSON.stringify(model)}, which this process does not serve (served: ${served})`,
    retryAfterSeconds: 60,
  },
  RERANK_NEEDS_QUERY: {
    type: 'validation',
    message: 'rerank needs query (text): a cross-encoder reads the query and each document together',
  },
  RERANK_NEEDS_TEXT: {
    type: 'validation',
    message: (id: string) => `rerank needs the documents' text: document ${JSON.stringify(id)} was stored as a vector only`,
  },
  QUERY_TOO_MANY_CHARS: {
    type: 'payload_too_large',
    message: (n: number, max: number) => `query has ${n} characters; at most ${max} are allowed`,
  },
  INTERNAL: { type: 'internal', message: 'internal error' },
});

type HttpMapping = Omit<CatalogueEntry, 'message'>;

/**
 * The runtime's errors, in HTTP terms: the public type alone, or with its Retry-After or OpenAI
 * code. The runtime's own message is sent.
 */
export const RUNTIME_ERROR_HTTP: { [C in RuntimeErrorCode]: ErrorType | HttpMapping } = {
  DIMENSIONS_OUT_OF_RANGE: 'validation',
  DIMENSIONS_NOT_ALLOWED: 'validation',
  LAYER_OUT_OF_RANGE: 'validation',
  LAYER_NOT_ALLOWED: 'validation',
  LAYER_EXIT_UNAVAILABLE: 'validation',
  UNKNOWN_PROMPT: 'validation',
  PROMPT_AND_INSTRUCTION: 'validation',
  TOKEN_PREPENDING_UNSUPPORTED: 'validation',
  TOKEN_PREPENDING_UNAVAILABLE: 'validation',
  UNKNOWN_TOKEN_ID: 'validation',
  WRONG_TASK: { type: 'validation', openAiCode: 'wrong_model_task' },
  // Empty, blank, or only what the tokenizer drops: refused on every route that embeds or reranks.
  EMPTY_INPUT: { type: 'validation', openAiCode: 'empty_input' },
  INPUT_TOO_LONG: 'payload_too_large',
  QUEUE_FULL: 'overloaded',
  DEADLINE_EXCEEDED: 'timeout',
  // Refused up front rather than computed and thrown away at the deadline (split it, or allow more time).
  DEADLINE_TOO_SHORT: 'payload_too_large',
  DEADLINE_BEHIND_QUEUE: 'overloaded',
  // Never sent: the client is gone (the reply is a 499 that only the logs and metrics see).
  CANCELLED: 'unavailable',
  SHUTTING_DOWN: { type: 'unavailable', retryAfterSeconds: 1 },
  WORKER_FAILED: { type: 'unavailable', retryAfterSeconds: 1 },
  INFERENCE_FAILED: { type: 'unavailable', retryAfterSeconds: 1 },
};

/** A runtime error's HTTP mapping, the shorthand (a type alone) spelled out. */
export function runtimeErrorHttp(code: RuntimeErrorCode): HttpMapping {
  const m = RUNTIME_ERROR_HTTP[code];
  return typeof m === 'string' ? { type: m } : m;
}

/** `Retry-After` for a full queue: the time the waiting work should take to drain, at least 1 s. */
export function queueRetryAfterSeconds(err: RuntimeError): number {
  return Math.max(1, Math.ceil((err.details.drainMs ?? 0) / 1000));
}

/** The store's errors, as public codes. The store's own message is sent. */
export const INDEX_ERROR_HTTP: { [C in IndexErrorCode]: HttpMapping & { code: string } } = {
  VALIDATION: { code: 'INVALID_COLLECTION_INPUT', type: 'validation' },
  NOT_FOUND: { code: 'COLLECTION_NOT_FOUND', type: 'not_found' },
  CONFLICT: { code: 'COLLECTION_CONFLICT', type: 'conflict' },
  // The store refuses writes it cannot make durable until a restart recovers it.
  STORAGE: { code: 'STORAGE_FAILED', type: 'unavailable', retryAfterSeconds: 5 },
  // A collection damaged on disk: the others serve; this one waits for an operator.
  UNAVAILABLE: { code: 'COLLECTION_UNAVAILABLE', type: 'unavailable', retryAfterSeconds: 60 },
  // Replicas over PostgreSQL: the database is unreachable or restarting (reads are still served), or
  // this replica is still loading. Retrying soon, on this or another replica, is right.
  UNREACHABLE: { code: 'STORE_UNAVAILABLE', type: 'unavailable', retryAfterSeconds: 1 },
};

export type ServerErrorCode = keyof typeof SERVER_ERRORS;

/** Every `error_code` the service can send. */
export const ERROR_CODES: readonly string[] = [
  ...Object.keys(SERVER_ERRORS),
  ...Object.keys(RUNTIME_ERROR_HTTP),
  ...Object.values(INDEX_ERROR_HTTP).map((e) => e.code),
];

type MessageArgs<C extends ServerErrorCode> = (typeof SERVER_ERRORS)[C]['message'] extends (...args: infer A) => string ? A : [];

/** An error raised by the HTTP layer: its code, and the arguments of its catalogue template. */
export class ApiError<C extends ServerErrorCode = ServerErrorCode> extends Error {
  readonly code: C;
  constructor(code: C, ...args: MessageArgs<C>) {
    const template = SERVER_ERRORS[code].message as string | ((...a: unknown[]) => string);
    super(typeof template === 'function' ? template(...args) : template);
    this.code = code;
    this.name = 'ApiError';
  }
}
