/**
 * Entry point: configuration → engine → HTTP server, and an orderly shutdown on SIGTERM/SIGINT.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pino } from 'pino';
import { CollectionStore, type StoreBackend } from '../index/index.js';
import { PgStore } from '../pgstore/pg-store.js';
import { ModelDirError } from '../runtime/model-dir.js';
import { Models } from '../runtime/models.js';
import { buildApp } from './app.js';
import { loadApiKeys } from './auth.js';
import { type Config, ConfigError, helpText, loadConfig } from './config.js';

const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

async function main(): Promise<void> {
  let config: Config | 'help';
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (config === 'help') {
    process.stdout.write(`${helpText()}\n`);
    return;
  }
  const logger = pino({ level: config.logLevel });
  let models: Models;
  const entries = (config.models ?? [{ name: 'default', dir: config.modelDir }]).map(({ name, dir }) => ({
    name,
    dir,
    variant: config.modelVariant,
    onnxFile: config.onnxFile,
    quantize: config.quantize as 'int8' | 'none' | undefined,
  }));
  try {
    models = await Models.load({
      models: entries,
      scheduling: config.scheduler,
      workers: config.workers,
      intraOpThreads: config.intraOpThreads,
      executionProviders: config.executionProviders,
      inferenceNice: config.inferenceNice,
      layerExit: config.layerExit === 'on',
      memoryArena: config.memoryArena === 'on',
      quantizeFloor: config.quantizeMinAgreement,
      limits: {
        ...(config.maxBatchSize !== undefined && { maxBatchSize: config.maxBatchSize }),
        ...(config.maxBatchTokens !== undefined && { maxBatchTokens: config.maxBatchTokens }),
        ...(config.maxQueueDelayMs !== undefined && { maxDelayMs: config.maxQueueDelayMs }),
        ...(config.maxQueueInputs !== undefined && { maxQueueInputs: config.maxQueueInputs }),
        ...(config.maxQueueTokens !== undefined && { maxQueueTokens: config.maxQueueTokens }),
      },
      log: (level, msg) => logger[level](msg),
    });
  } catch (err) {
    const message = err instanceof ModelDirError ? err.message : `could not load the models: ${(err as Error).message}`;
    logger.fatal(message);
    process.exit(1);
  }
  for (const engine of models.all) {
    if (engine.spec.untrained) {
      logger.warn(
        `model ${engine.name} (${engine.spec.dir}) is marked untrained (embedder.json): its outputs carry no meaning; serve a trained model with MODEL_DIR or MODELS`,
      );
    }
  }

  // Local collections are recovered before the server listens, so /ready implies they are loaded.
  // Over PostgreSQL the replica listens at once (liveness holds while PostgreSQL is away) and
  // /ready stays 503 until it has loaded and caught up.
  let store: StoreBackend;
  let replica: PgStore | undefined;
  if (config.storeUrl) {
    const opened = PgStore.open({ url: config.storeUrl, logger: logger.child({ component: 'store' }) });
    store = replica = opened.store;
    opened.ready.then(
      () => logger.info(`collections: ${opened.store.list().length} loaded from PostgreSQL; following its changes`),
      (err: unknown) => {
        logger.fatal(`could not use the store at STORE_URL: ${(err as Error).message}`);
        process.exit(1);
      },
    );
  } else {
    try {
      store = await CollectionStore.open(resolve(config.dataDir), { logger: logger.child({ component: 'index' }) });
    } catch (err) {
      logger.fatal(`could not open the collections in ${resolve(config.dataDir)}: ${(err as Error).message}`);
      process.exit(1);
    }
    logger.info(`collections: ${(await store.list()).length} loaded from ${resolve(config.dataDir)}`);
  }

  let apiKeys: string[];
  try {
    apiKeys = loadApiKeys(config.apiKeys, config.apiKeysFile);
  } catch (err) {
    logger.fatal(`API_KEYS_FILE could not be read: ${(err as Error).message}`);
    process.exit(2);
  }
  const app = await buildApp({
    models,
    store,
    replica,
    logger: { level: config.logLevel },
    version,
    apiKeys,
    publicRoutes: config.publicRoutes,
    corsOrigins: config.corsOrigins,
    limits: {
      maxInputs: config.maxInputs,
      maxInputChars: config.maxInputChars,
      bodyLimit: config.bodyLimit,
      requestTimeoutMs: config.requestTimeoutMs,
      maxEventLoopDelayMs: config.maxEventLoopDelayMs,
      ...(config.maxConnections !== undefined && { maxConnections: config.maxConnections }),
      headersTimeoutMs: config.headersTimeoutMs,
      requestReadTimeoutMs: config.requestReadTimeoutMs,
      maxJsonDepth: config.maxJsonDepth,
    },
  });
  if (apiKeys.length) app.log.info(`API keys required (${apiKeys.length} configured); public routes: ${config.publicRoutes.join(', ')}`);
  await app.listen({ host: config.host, port: config.port });
  await models.warmUp();
  for (const e of models.all) {
    app.log.info(
      `ready: model ${e.name} = ${e.spec.id} (${e.task === 'rerank' ? 'reranker' : `${e.spec.hiddenSize} dims`}, ${e.spec.numLayers} layers)`,
    );
  }

  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    app.log.info(`${signal}: stopping (finishing queued work for up to ${config.shutdownTimeoutMs} ms)`);
    const force = setTimeout(() => {
      app.log.error('shutdown deadline passed; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs + 5000);
    force.unref();
    const deadline = Date.now() + config.shutdownTimeoutMs;
    // Stop accepting first, then let what was accepted finish, then stop the workers. Keep-alive
    // connections become idle only once their last response is written: close them as they do.
    const closing = app.close();
    const reaper = setInterval(() => app.server.closeIdleConnections(), 50);
    await models.close(config.shutdownTimeoutMs);
    // Whatever is still open at the deadline (a client that never finishes its body, a response
    // the client does not read) is cut, so the drain ends within SHUTDOWN_TIMEOUT_MS.
    await Promise.race([closing, new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
    app.server.closeAllConnections();
    await closing;
    clearInterval(reaper);
    // Acknowledged writes are already durable in the log; a final snapshot shortens the next start.
    await store.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

void main();
