/**
 * Prometheus metrics. HTTP outcomes are counted here from responses; batch shapes come from the
 * runtime's published events (src/runtime/events.ts); queue depth and worker health are read from
 * the models when scraped. Everything about a model's work carries a `model` label (the name
 * clients address it by).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Embedder, EmbedResult, ModelSet } from '../runtime/embedder.js';
import { subscribe } from '../runtime/events.js';

const PREFIX = 'embed_';
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class Metrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly requestDuration: Histogram<'route'>;
  private readonly rejected: Counter<'reason'>;
  private readonly queueTime: Histogram<'model'>;
  private readonly tokenizeTime: Histogram<'model'>;
  private readonly inferenceTime: Histogram<'model'>;
  private readonly tokens: Counter<'model'>;
  private readonly batchSize: Histogram<'model'>;
  private readonly batchTokens: Histogram<'model'>;
  private readonly batchInference: Histogram<'model'>;
  private readonly unsubscribe: () => void;

  constructor(models: ModelSet) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: PREFIX });
    this.requests = new Counter({
      name: `${PREFIX}http_requests_total`,
      help: 'HTTP requests by route, method and status',
      labelNames: ['route', 'method', 'status'],
      registers: [r],
    });
    this.requestDuration = new Histogram({
      name: `${PREFIX}http_request_duration_seconds`,
      help: 'HTTP request duration by route',
      labelNames: ['route'],
      buckets: LATENCY_BUCKETS,
      registers: [r],
    });
    this.rejected = new Counter({
      name: `${PREFIX}rejected_requests_total`,
      help: 'Requests refused or abandoned, by reason (overloaded, deadline, dropped, unavailable)',
      labelNames: ['reason'],
      registers: [r],
    });
    this.queueTime = new Histogram({
      name: `${PREFIX}queue_duration_seconds`,
      help: 'Time a request waited in the batch queue before its first batch started',
      labelNames: ['model'],
      buckets: LATENCY_BUCKETS,
      registers: [r],
    });
    this.tokenizeTime = new Histogram({
      name: `${PREFIX}tokenization_duration_seconds`,
      help: 'Time spent tokenizing a request',
      labelNames: ['model'],
      buckets: LATENCY_BUCKETS,
      registers: [r],
    });
    this.inferenceTime = new Histogram({
      name: `${PREFIX}inference_duration_seconds`,
      help: "Time from a request's first batch start to its last batch end",
      labelNames: ['model'],
      buckets: LATENCY_BUCKETS,
      registers: [r],
    });
    this.tokens = new Counter({
      name: `${PREFIX}tokens_total`,
      help: 'Tokens computed (prompt and special tokens included; query-document pairs for rerankers)',
      labelNames: ['model'],
      registers: [r],
    });
    this.batchSize = new Histogram({
      name: `${PREFIX}batch_size`,
      help: 'Inputs per batch',
      labelNames: ['model'],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: [r],
    });
    this.batchTokens = new Histogram({
      name: `${PREFIX}batch_tokens`,
      help: 'Padded tokens per batch (size × longest input)',
      labelNames: ['model'],
      buckets: [16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768],
      registers: [r],
    });
    this.batchInference = new Histogram({
      name: `${PREFIX}batch_inference_duration_seconds`,
      help: 'ONNX Runtime time per batch',
      labelNames: ['model'],
      buckets: LATENCY_BUCKETS,
      registers: [r],
    });
    const perModel = (name: string, help: string, value: (e: Embedder) => number): void => {
      new Gauge({
        name: `${PREFIX}${name}`,
        help,
        labelNames: ['model'],
        registers: [r],
        collect() {
          for (const e of models.all) this.set({ model: e.name }, value(e));
        },
      });
    };
    perModel('queue_depth', "Inputs waiting in the model's batch queue", (e) => e.stats.queuedInputs);
    perModel('queue_tokens', "Tokens waiting in the model's batch queue", (e) => e.stats.queuedTokens);
    // The workers are shared: every model reports the same pool.
    new Gauge({
      name: `${PREFIX}workers_alive`,
      help: 'Inference workers ready',
      registers: [r],
      collect() {
        this.set(models.default.stats.workersAlive);
      },
    });
    new Gauge({
      name: `${PREFIX}worker_restarts`,
      help: 'Inference workers replaced after a failure since start',
      registers: [r],
      collect() {
        this.set(models.default.stats.workerRestarts);
      },
    });
    // Read when scraped, never while the app is built: building needs no loaded model.
    new Gauge({
      name: `${PREFIX}model_info`,
      help: 'A served model (value is always 1)',
      labelNames: ['model', 'provider', 'dimensions', 'layers', 'max_input_length', 'task'],
      registers: [r],
      collect() {
        for (const e of models.all) {
          const info = e.info;
          this.set(
            {
              model: e.name,
              provider: info.provider,
              dimensions: String(info.model.hiddenSize),
              layers: String(info.model.numLayers),
              max_input_length: String(info.model.maxLength),
              task: e.task,
            },
            1,
          );
        }
      },
    });
    // What the model's weights cost, per graph variant: `inline` bytes are decoded into each
    // session that loads the variant; `shared` bytes live in the one external-data file every
    // variant and worker maps (resident once per process, however many sessions read it).
    new Gauge({
      name: `${PREFIX}model_weight_bytes`,
      help: 'Weight bytes of the served graph variants (storage: inline = per session, shared = one mapped file per process)',
      labelNames: ['model', 'variant', 'storage'],
      registers: [r],
      collect() {
        for (const e of models.all) {
          const { weights } = e.info.graphs;
          for (const [variant, w] of Object.entries({ unsplit: weights.unsplit, stages: weights.stages })) {
            if (!w) continue;
            this.set({ model: e.name, variant, storage: 'inline' }, w.inline);
            this.set({ model: e.name, variant, storage: 'shared' }, w.shared);
          }
        }
      },
    });
    new Gauge({
      name: `${PREFIX}model_weight_file_bytes`,
      help: 'Size of the shared external-data file the graph variants map',
      labelNames: ['model'],
      registers: [r],
      collect() {
        for (const e of models.all) this.set({ model: e.name }, e.info.graphs.weights.file);
      },
    });
    this.unsubscribe = subscribe('batchDone', (b) => {
      // Only this app's models (tests run several apps in one process); looked up when it happens:
      // building the app reads nothing from the models.
      if (!models.get(b.model)) return;
      const model = b.model;
      this.batchSize.observe({ model }, b.size);
      this.batchTokens.observe({ model }, b.paddedTokens);
      this.batchInference.observe({ model }, b.inferenceMs / 1000);
    });
  }

  close(): void {
    this.unsubscribe();
  }

  observeEmbed(model: string, result: Pick<EmbedResult, 'totalTokens' | 'timings'>): void {
    this.tokens.inc({ model }, result.totalTokens);
    this.queueTime.observe({ model }, result.timings.queueMs / 1000);
    this.tokenizeTime.observe({ model }, result.timings.tokenizeMs / 1000);
    this.inferenceTime.observe({ model }, result.timings.inferenceMs / 1000);
  }

  observeResponse(route: string, method: string, status: number, seconds: number): void {
    this.requests.inc({ route, method, status: String(status) });
    this.requestDuration.observe({ route }, seconds);
    const reason =
      status === 429 ? 'overloaded' : status === 504 ? 'deadline' : status === 499 ? 'dropped' : status === 503 ? 'unavailable' : null;
    if (reason) this.rejected.inc({ reason });
  }
}
