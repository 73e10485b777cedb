/**
 * Builds the HTTP application around a loaded engine. HTTP concerns only: validation, error
 * mapping, request ids, headers. Everything about models and inference is behind `Engine`.
 */
import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Engine } from '../runtime/engine.js';
import { ApiError, sendError } from './errors.js';
import { embedRoutes } from './routes/embed.js';
import { opsRoutes } from './routes/ops.js';

export interface ServerLimits {
  maxInputs: number;
  maxInputChars: number;
  bodyLimit: number;
  requestTimeoutMs: number;
}

export interface AppOptions {
  engine: Engine;
  limits?: Partial<ServerLimits>;
  logger?: FastifyServerOptions['logger'];
  version?: string;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxInputs: 1024,
  maxInputChars: 100_000,
  bodyLimit: 4 * 1024 * 1024,
  requestTimeoutMs: 30_000,
};

const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const limits: ServerLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: limits.bodyLimit,
    requestIdHeader: false,
    // Echo a caller's request id when it is safe to log and repeat; otherwise make one.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : randomUUID();
    },
    ajv: { customOptions: { coerceTypes: false, allErrors: false, removeAdditional: true, useDefaults: true } },
    return503OnClosing: true,
  });

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.setErrorHandler((err, request, reply) => sendError(request, reply, err));
  app.setNotFoundHandler((request, reply) =>
    sendError(request, reply, new ApiError('not_found', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );

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
        { name: 'operations', description: 'Health, readiness and facts about the model' },
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  opsRoutes(app, options.engine, limits, options.version ?? '0.0.0');
  embedRoutes(app, options.engine, limits);
  return app;
}
