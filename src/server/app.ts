/**
 * Builds the HTTP application around a loaded engine. HTTP concerns only: validation, error
 * mapping, request ids, auth, metrics, load shedding. Everything about models and inference is
 * behind `Engine`.
 */
import { randomUUID } from 'node:crypto';
import type { Server as NetServer } from 'node:net';
import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { StoreBackend } from '../index/index.js';
import type { Engine } from '../runtime/engine.js';
import { registerAuth } from './auth.js';
import { ApiError, sendError } from './errors.js';
import {
  MAX_JSON_DEPTH,
  clientErrorHandler,
  defaultMaxConnections,
  frameworkErrors,
  limitConnections,
  logSerializers,
  parseJsonBody,
  refuseWhileClosing,
  serverTimeouts,
  shedOnEventLoopDelay,
} from './http-guard.js';
import { Metrics } from './metrics.js';
import { collectionRoutes } from './routes/collections.js';
import { embedRoutes } from './routes/embed.js';
import { ollamaRoutes } from './routes/ollama.js';
import { teiRoutes } from './routes/tei.js';
import { openAiRoutes } from './routes/openai.js';
import { opsRoutes } from './routes/ops.js';

export interface ServerLimits {
  maxInputs: number;
  maxInputChars: number;
  bodyLimit: number;
  requestTimeoutMs: number;
  /** Event-loop delay beyond which requests are shed with 503 (0 = never). */
  maxEventLoopDelayMs: number;
  /** Most open client connections (kept below the open-file limit); beyond it 503 and close. */
  maxConnections: number;
  /** Longest a client may take to send its request headers. */
  headersTimeoutMs: number;
  /** Longest a client may take to send a whole request, headers and body. */
  requestReadTimeoutMs: number;
  /** How often the two timeouts above are checked. */
  timeoutCheckIntervalMs: number;
  /** Deepest JSON nesting accepted in a body. */
  maxJsonDepth: number;
}

export interface AppOptions {
  engine: Engine;
  /** Durable collections; without it the collection routes are absent (candidates search still works). */
  store?: StoreBackend;
  limits?: Partial<ServerLimits>;
  logger?: FastifyServerOptions['logger'];
  version?: string;
  /** Bearer keys; none means no authentication. */
  apiKeys?: string[];
  /** Routes reachable without a key when keys are set. */
  publicRoutes?: string[];
  /** Allowed CORS origins (`*` for any); none means CORS is off. */
  corsOrigins?: string[];
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxInputs: 2048,
  maxInputChars: 100_000,
  bodyLimit: 8 * 1024 * 1024,
  requestTimeoutMs: 30_000,
  maxEventLoopDelayMs: 1000,
  maxConnections: defaultMaxConnections(),
  headersTimeoutMs: 10_000,
  requestReadTimeoutMs: 30_000,
  timeoutCheckIntervalMs: 1000,
  maxJsonDepth: MAX_JSON_DEPTH,
};

export const DEFAULT_PUBLIC_ROUTES = ['/health', '/ready', '/metrics'];

const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const limits: ServerLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const logger =
    options.logger === undefined || options.logger === false
      ? false
      : { redact: ['req.headers.authorization'], serializers: logSerializers, ...(typeof options.logger === 'object' ? options.logger : {}) };
  const app = Fastify({
    logger,
    bodyLimit: limits.bodyLimit,
    ...serverTimeouts({
      maxConnections: limits.maxConnections,
      headersTimeoutMs: limits.headersTimeoutMs,
      requestReadTimeoutMs: limits.requestReadTimeoutMs,
      checkIntervalMs: limits.timeoutCheckIntervalMs,
    }),
    clientErrorHandler,
    frameworkErrors,
    requestIdHeader: false,
    // Echo a caller's request id when it is safe to log and repeat; otherwise make one.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : randomUUID();
    },
    ajv: { customOptions: { coerceTypes: false, allErrors: false, removeAdditional: true, useDefaults: true, allowUnionTypes: true } },
    // Our own 503 (contract shape, Retry-After) answers requests that arrive while closing.
    return503OnClosing: false,
  });
  limitConnections(app.server as unknown as NetServer, limits.maxConnections, app.log);
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJsonBody(limits.maxJsonDepth));
  const metrics = new Metrics(options.engine);

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  refuseWhileClosing(app);
  app.addHook('onResponse', async (request, reply) => {
    metrics.observeResponse(request.routeOptions.url ?? 'unmatched', request.method, reply.statusCode, reply.elapsedTime / 1000);
  });
  app.setErrorHandler((err, request, reply) => sendError(request, reply, err));
  app.setNotFoundHandler((request, reply) =>
    sendError(request, reply, new ApiError('not_found', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );

  if (options.corsOrigins?.length) {
    await app.register(cors, { origin: options.corsOrigins.includes('*') ? true : options.corsOrigins, exposedHeaders: ['x-request-id', 'x-compute-tokens', 'x-total-time', 'x-queue-time', 'x-inference-time', 'retry-after'] });
  }
  registerAuth(app, options.apiKeys ?? [], options.publicRoutes ?? DEFAULT_PUBLIC_ROUTES);
  // Liveness is never shed: a load balancer must not kill a busy but healthy instance.
  if (limits.maxEventLoopDelayMs > 0) shedOnEventLoopDelay(app, limits.maxEventLoopDelayMs, (request) => request.routeOptions.url === '/health');

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Embedding service',
        description: 'Text embeddings (TEI- and OpenAI-compatible) with 2D Matryoshka knobs, and vector search.',
        version: options.version ?? '0.0.0',
      },
      tags: [
        { name: 'embeddings', description: 'Turn text into vectors' },
        { name: 'openai', description: 'OpenAI-compatible embeddings' },
        { name: 'collections', description: 'Durable HNSW collections and search' },
        { name: 'operations', description: 'Health, readiness, metrics and facts about the model' },
      ],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      ...(options.apiKeys?.length ? { security: [{ bearer: [] }] } : {}),
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/metrics', { schema: { summary: 'Prometheus metrics', tags: ['operations'] } }, async (_request, reply) =>
    reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
  );

  opsRoutes(app, options.engine, limits, options.version ?? '0.0.0', options.store);
  embedRoutes(app, options.engine, limits, metrics);
  openAiRoutes(app, options.engine, limits, metrics);
  const deps = { engine: options.engine, limits, metrics };
  await app.register(teiRoutes, deps);
  await app.register(ollamaRoutes, deps);
  if (options.store) collectionRoutes(app, options.engine, options.store, limits, metrics);
  return app;
}
