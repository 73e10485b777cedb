/** Operational routes: liveness, readiness, metrics, model and engine facts. */
import type { FastifyPluginAsync } from 'fastify';
import type { StoreBackend } from '../../index/index.js';
import { cpuFeatures } from '../../runtime/cpu.js';
import type { Embedder } from '../../runtime/embedder.js';
import { ApiError } from '../errors/catalogue.js';
import { errorResponses } from '../errors/reply.js';
import type { RouteDeps } from './deps.js';
import { EMBEDDING_TYPES } from './embed.js';

export const opsPlugin: FastifyPluginAsync<RouteDeps & { version: string; store?: StoreBackend }> = async (
  app,
  { models, limits, metrics, version, store },
) => {
  // Collections damaged on disk do not make the instance unready (everything else serves), but
  // operators must see them: they are listed in /ready's body and /info.
  const collectionHealth = () =>
    store ? { unavailable_collections: store.unavailableCollections(), recovered_collections: store.recoveries() } : {};

  // Liveness is never shed (see app.ts): a load balancer must not kill a busy but healthy instance.
  app.get('/health', { schema: { summary: 'Liveness', tags: ['operations'] }, config: { public: true, shed: false } }, async () => ({
    status: 'ok',
  }));

  app.get(
    '/ready',
    {
      schema: { summary: 'Readiness: model loaded and warmed up', tags: ['operations'], response: { 503: errorResponses[503] } },
      config: { public: true, readiness: true },
    },
    async () => {
      if (!models.all.every((e) => e.isReady)) throw new ApiError('NOT_READY');
      return { status: 'ready', ...collectionHealth() };
    },
  );

  app.get(
    '/metrics',
    { schema: { summary: 'Prometheus metrics', tags: ['operations'] }, config: { public: true } },
    async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
  );

  app.get('/info', { schema: { summary: 'Models, knobs and batching limits in effect', tags: ['operations'] } }, async () => {
    const { provider, workers, intraOpThreads, scheduling } = models.default.info;
    return {
      version,
      // The default model's facts at the top level (as with one model); every model under `models`.
      ...modelInfo(models.default),
      models: models.all.map(modelInfo),
      execution_provider: provider,
      workers,
      intra_op_threads: intraOpThreads,
      scheduling,
      limits: {
        max_inputs: limits.maxInputs,
        max_input_chars: limits.maxInputChars,
        body_limit_bytes: limits.bodyLimit,
        request_timeout_ms: limits.requestTimeoutMs,
      },
      ...collectionHealth(),
    };
  });
};

/** Everything about one served model: what it is, its knobs, and its queue's limits. */
function modelInfo(embedder: Embedder): Record<string, unknown> {
  const { model, limits: batching, inputNames, stages, precision } = embedder.info;
  return {
    name: embedder.name,
    task: embedder.task,
    model_id: model.id,
    model_dir: model.dir,
    model_type: model.modelType,
    untrained: model.untrained,
    dimensions: model.hiddenSize,
    matryoshka_dimensions: model.matryoshkaDimensions,
    layers: model.numLayers,
    exit_layers: model.exitLayers,
    layer_exit: stages.ok ? { available: true, stages: stages.count } : { available: false, reason: stages.reason },
    max_input_length: model.maxLength,
    pooling: model.pooling,
    include_prompt: model.includePrompt,
    padding_side: model.paddingSide,
    prompts: model.prompts,
    default_prompt_name: model.defaultPromptName,
    instruction_template: model.instructionTemplate,
    token_prepending: model.tokenPrepending,
    similarity: model.similarity,
    graph_inputs: inputNames,
    precision: precision.precision,
    quantization: {
      source: precision.source,
      agreement: precision.agreement,
      worst_agreement: precision.worst,
      floor: precision.floor,
      weight_format: precision.weightFormat,
      fallback: precision.fallback,
    },
    // int8 speed and exactness depend on these (see benchmarks/RESULTS.md, int8 by CPU).
    cpu: { ...cpuFeatures(), int8_pair_saturation: precision.pairSaturation },
    ...(embedder.task === 'embed' && {
      embedding_types: EMBEDDING_TYPES,
      // Where int8/uint8 outputs take their per-dimension ranges from.
      embedding_calibration: { source: embedder.calibration.source, sentences: embedder.calibration.sentences.length },
    }),
    batching: {
      max_batch_size: batching.maxBatchSize,
      max_batch_tokens: batching.maxBatchTokens,
      max_queue_delay_ms: batching.maxDelayMs,
      max_queue_inputs: batching.maxQueueInputs,
      max_queue_tokens: batching.maxQueueTokens,
    },
  };
}
