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
    const counter = <L extends string>(name: string, help: string, labelNames: L[]) =>
      new Counter<L>({ name: PREFIX + name, help, labelNames, registers: [r] });
    const histogram = <L extends string>(name: string, help: string, labelNames: L[], buckets = LATENCY_BUCKETS) =>
      new Histogram<L>({ name: PREFIX + name, help, labelNames, buckets, registers: [r] });
    // Gauges are read when scraped, never while the app is built: building needs no loaded model.
    const gauge = <L extends string>(name: string, help: string, labelNames: L[], read: (g: Gauge<L>) => void) =>
      new Gauge<L>({
        name: PREFIX + name,
        help,
        labelNames,
        registers: [r],
        collect() {
          read(this);
        },
      });
    const perModel = (name: string, help: string, value: (e: Embedder) => number) =>
      gauge(name, help, ['model'], (g) => {
        for (const e of models.all) g.set({ model: e.name }, value(e));
      });

    this.requests = counter('http_requests_total', 'HTTP requests by route, method and status', ['route', 'method', 'status']);
    this.requestDuration = histogram('http_request_duration_seconds', 'HTTP request duration by route', ['route']);
    this.rejected = counter(
      'rejected_requests_total',
      'Requests refused or abandoned, by reason (overloaded, deadline, dropped, unavailable)',
      ['reason'],
    );
    this.queueTime = histogram('queue_duration_seconds', 'Time a request waited in the batch queue before its first batch started', [
      'model',
    ]);
    this.tokenizeTime = histogram('tokenization_duration_seconds', 'Time spent tokenizing a request', ['model']);
    this.inferenceTime = histogram('inference_duration_seconds', "Time from a request's first batch start to its last batch end", [
      'model',
    ]);
    this.tokens = counter('tokens_total', 'Tokens computed (prompt and special tokens included; query-document pairs for rerankers)', [
      'model',
    ]);
    this.batchSize = histogram('batch_size', 'Inputs per batch', ['model'], [1, 2, 4, 8, 16, 32, 64, 128, 256]);
    this.batchTokens = histogram(
      'batch_tokens',
      'Padded tokens per batch (size × longest input)',
      ['model'],
      [16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768],
    );
    this.batchInference = histogram('batch_inference_duration_seconds', 'ONNX Runtime time per batch', ['model']);
    perModel('queue_depth', "Inputs waiting in the model's batch queue", (e) => e.stats.queuedInputs);
    perModel('queue_tokens', "Tokens waiting in the model's batch queue", (e) => e.stats.queuedTokens);
    // The workers are shared: every model reports the same pool.
    gauge('workers_alive', 'Inference workers ready', [], (g) => g.set(models.default.stats.workersAlive));
    gauge('worker_restarts', 'Inference workers replaced after a failure since start', [], (g) =>
      g.set(models.default.stats.workerRestarts),
    );
    const infoLabels = ['model', 'provider', 'dimensions', 'layers', 'max_input_length', 'task'] as const;
    gauge('model_info', 'A served model (value is always 1)', [...infoLabels], (g) => {
      for (const e of models.all) {
        const { provider, model } = e.info;
        const labels = { provider, dimensions: model.hiddenSize, layers: model.numLayers, max_input_length: model.maxLength, task: e.task };
        g.set({ model: e.name, ...labels }, 1);
      }
    });
    // What the model's weights cost, per graph variant: `inline` bytes are decoded into each
    // session that loads the variant; `shared` bytes live in the one external-data file every
    // variant and worker maps (resident once per process, however many sessions read it).
    gauge(
      'model_weight_bytes',
      'Weight bytes of the served graph variants (storage: inline = per session, shared = one mapped file per process)',
      ['model', 'variant', 'storage'],
      (g) => {
        for (const e of models.all) {
          const { weights } = e.info.graphs;
          for (const [variant, w] of Object.entries({ unsplit: weights.unsplit, stages: weights.stages })) {
            if (!w) continue;
            g.set({ model: e.name, variant, storage: 'inline' }, w.inline);
            g.set({ model: e.name, variant, storage: 'shared' }, w.shared);
          }
        }
      },
    );
    perModel('model_weight_file_bytes', 'Size of the shared external-data file the graph variants map', (e) => e.info.graphs.weights.file);
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
