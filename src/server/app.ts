/**
 * Builds the HTTP application around an embedder. HTTP concerns only: validation, error mapping,
 * request ids, auth, metrics, load shedding. Everything about models and inference is behind the
 * `Embedder` interface; each group of routes is an encapsulated plugin in ./plugins.
 */
import { randomUUID } from 'node:crypto';
import type { Server as NetServer } from 'node:net';
import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { StoreBackend } from '../index/index.js';
import type { Embedder, ModelSet } from '../runtime/embedder.js';
import { registerAuth } from './auth.js';
import { ApiError } from './errors/catalogue.js';
import { sendError } from './errors/reply.js';
import {
  clientErrorHandler,
  defaultMaxConnections,
  frameworkErrors,
  limitConnections,
  logSerializers,
  MAX_JSON_DEPTH,
  parseJsonBody,
  refuseWhileClosing,
  serverTimeouts,
  shedOnEventLoopDelay,
} from './http-guard.js';
import { Metrics } from './metrics.js';
import { singleModel } from './model-routing.js';
import { collectionsPlugin } from './plugins/collections.js';
import type { RouteDeps } from './plugins/deps.js';
import { embedPlugin } from './plugins/embed.js';
import { ollamaPlugin } from './plugins/ollama.js';
import { openAiPlugin } from './plugins/openai.js';
import { opsPlugin } from './plugins/ops.js';
import { rerankPlugin } from './plugins/rerank.js';
import { teiPlugin } from './plugins/tei.js';
import { type Replica, replicaHooks } from './replica.js';
import { EXPOSED_HEADERS } from './timing.js';

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
  /** The served models (MODELS=...); or `embedder`: one model. */
  models?: ModelSet;
  embedder?: Embedder;
  /** Durable collections; without it the collection routes are absent (candidates search still works). */
  store?: StoreBackend;
  /** Set when `store` is shared by replicas (STORE_URL): sequence headers, readiness and lag metrics. */
  replica?: Replica;
  limits?: Partial<ServerLimits>;
  logger?: FastifyServerOptions['logger'];
  version?: string;
  /** Bearer keys; none means no authentication. */
  apiKeys?: string[];
  /** Route patterns reachable without a key when keys are set (default: the routes marked public). */
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

const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const limits: ServerLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const logger =
    options.logger === undefined || options.logger === false
      ? false
      : {
          redact: ['req.headers.authorization'],
          serializers: logSerializers,
          ...(typeof options.logger === 'object' ? options.logger : {}),
        };
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
  const models = options.models ?? (options.embedder ? singleModel(options.embedder) : undefined);
  if (!models) throw new Error('buildApp needs models or an embedder');
  const metrics = new Metrics(models);
  app.addHook('onClose', async () => metrics.close());

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  refuseWhileClosing(app);
  app.addHook('onResponse', async (request, reply) => {
    metrics.observeResponse(request.routeOptions.url ?? 'unmatched', request.method, reply.statusCode, reply.elapsedTime / 1000);
  });
  app.setErrorHandler((err, request, reply) => sendError(request, reply, err));
  app.setNotFoundHandler((request) => {
    throw new ApiError('ROUTE_NOT_FOUND', request.method, request.url.split('?')[0]!);
  });

  if (options.corsOrigins?.length) {
    await app.register(cors, {
      origin: options.corsOrigins.includes('*') ? true : options.corsOrigins,
      exposedHeaders: [...EXPOSED_HEADERS],
    });
  }
  registerAuth(app, options.apiKeys ?? [], options.publicRoutes);
  // Liveness is never shed: a load balancer must not kill a busy but healthy instance.
  if (limits.maxEventLoopDelayMs > 0)
    shedOnEventLoopDelay(app, limits.maxEventLoopDelayMs, (request) => request.routeOptions.config.shed === false);

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
        { name: 'rerank', description: 'Cross-encoder reranking (TEI and Cohere/Jina shapes)' },
        { name: 'collections', description: 'Durable HNSW collections and search' },
        { name: 'operations', description: 'Health, readiness, metrics and facts about the model' },
      ],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      ...(options.apiKeys?.length ? { security: [{ bearer: [] }] } : {}),
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  // Root-level hooks: they apply to the route plugins registered below.
  if (options.replica) replicaHooks(app, options.replica, metrics, limits.requestTimeoutMs);
  const deps: RouteDeps = { models, embedder: models.default, limits, metrics };
  await app.register(opsPlugin, { ...deps, version: options.version ?? '0.0.0', ...(options.store && { store: options.store }) });
  await app.register(embedPlugin, deps);
  await app.register(openAiPlugin, deps);
  await app.register(teiPlugin, deps);
  await app.register(ollamaPlugin, deps);
  await app.register(rerankPlugin, deps);
  if (options.store) await app.register(collectionsPlugin, { ...deps, store: options.store });
  return app;
}
