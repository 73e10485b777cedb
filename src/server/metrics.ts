/**
 * Prometheus metrics. HTTP outcomes are counted here from responses; batch shapes come from the
 * runtime's published events (src/runtime/events.ts); queue depth and worker health are read from
 * the embedder when scraped.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EmbedResult, Embedder } from '../runtime/embedder.js';
import { subscribe } from '../runtime/events.js';

const PREFIX = 'embed_';
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class Metrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly requestDuration: Histogram<'route'>;
  private readonly rejected: Counter<'reason'>;
  private readonly queueTime: Histogram;
  private readonly tokenizeTime: Histogram;
  private readonly inferenceTime: Histogram;
  private readonly tokens: Counter;
  private readonly batchSize: Histogram;
  private readonly batchTokens: Histogram;
  private readonly batchInference: Histogram;
  private readonly unsubscribe: () => void;

  constructor(engine: Embedder) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: PREFIX });
    this.requests = new Counter({ name: `${PREFIX}http_requests_total`, help: 'HTTP requests by route, method and status', labelNames: ['route', 'method', 'status'], registers: [r] });
    this.requestDuration = new Histogram({ name: `${PREFIX}http_request_duration_seconds`, help: 'HTTP request duration by route', labelNames: ['route'], buckets: LATENCY_BUCKETS, registers: [r] });
    this.rejected = new Counter({ name: `${PREFIX}rejected_requests_total`, help: 'Requests refused or abandoned, by reason (overloaded, deadline, dropped, unavailable)', labelNames: ['reason'], registers: [r] });
    this.queueTime = new Histogram({ name: `${PREFIX}queue_duration_seconds`, help: 'Time a request waited in the batch queue before its first batch started', buckets: LATENCY_BUCKETS, registers: [r] });
    this.tokenizeTime = new Histogram({ name: `${PREFIX}tokenization_duration_seconds`, help: 'Time spent tokenizing a request', buckets: LATENCY_BUCKETS, registers: [r] });
    this.inferenceTime = new Histogram({ name: `${PREFIX}inference_duration_seconds`, help: "Time from a request's first batch start to its last batch end", buckets: LATENCY_BUCKETS, registers: [r] });
    this.tokens = new Counter({ name: `${PREFIX}tokens_total`, help: 'Tokens embedded (prompt and special tokens included)', registers: [r] });
    this.batchSize = new Histogram({ name: `${PREFIX}batch_size`, help: 'Inputs per batch', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers: [r] });
    this.batchTokens = new Histogram({ name: `${PREFIX}batch_tokens`, help: 'Padded tokens per batch (size × longest input)', buckets: [16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768], registers: [r] });
    this.batchInference = new Histogram({ name: `${PREFIX}batch_inference_duration_seconds`, help: 'ONNX Runtime time per batch', buckets: LATENCY_BUCKETS, registers: [r] });
    new Gauge({ name: `${PREFIX}queue_depth`, help: 'Inputs waiting in the batch queue', registers: [r], collect() { this.set(engine.stats.queuedInputs); } });
    new Gauge({ name: `${PREFIX}queue_tokens`, help: 'Tokens waiting in the batch queue', registers: [r], collect() { this.set(engine.stats.queuedTokens); } });
    new Gauge({ name: `${PREFIX}workers_alive`, help: 'Inference workers ready', registers: [r], collect() { this.set(engine.stats.workersAlive); } });
    new Gauge({ name: `${PREFIX}worker_restarts`, help: 'Inference workers replaced after a failure since start', registers: [r], collect() { this.set(engine.stats.workerRestarts); } });
    // Read when scraped, never while the app is built: building needs no loaded model.
    new Gauge({
      name: `${PREFIX}model_info`,
      help: 'The served model (value is always 1)',
      labelNames: ['model', 'provider', 'dimensions', 'layers', 'max_input_length'],
      registers: [r],
      collect() {
        const info = engine.info;
        this.set({ model: info.model.id, provider: info.provider, dimensions: String(info.model.hiddenSize), layers: String(info.model.numLayers), max_input_length: String(info.model.maxLength) }, 1);
      },
    });
    // What the model's weights cost, per graph variant: `inline` bytes are decoded into each
    // session that loads the variant; `shared` bytes live in the one external-data file every
    // variant and worker maps (resident once per process, however many sessions read it).
    new Gauge({
      name: `${PREFIX}model_weight_bytes`,
      help: 'Weight bytes of the served graph variants (storage: inline = per session, shared = one mapped file per process)',
      labelNames: ['variant', 'storage'],
      registers: [r],
      collect() {
        const { weights } = engine.info.graphs;
        for (const [variant, w] of Object.entries({ unsplit: weights.unsplit, stages: weights.stages })) {
          if (!w) continue;
          this.set({ variant, storage: 'inline' }, w.inline);
          this.set({ variant, storage: 'shared' }, w.shared);
        }
      },
    });
    new Gauge({
      name: `${PREFIX}model_weight_file_bytes`,
      help: 'Size of the shared external-data file the graph variants map',
      registers: [r],
      collect() {
        this.set(engine.info.graphs.weights.file);
      },
    });
    this.unsubscribe = subscribe('batchDone', (b) => {
      if (b.model !== engine.spec.id) return;
      this.batchSize.observe(b.size);
      this.batchTokens.observe(b.paddedTokens);
      this.batchInference.observe(b.inferenceMs / 1000);
    });
  }

  close(): void {
    this.unsubscribe();
  }

  observeEmbed(result: EmbedResult): void {
    this.tokens.inc(result.totalTokens);
    this.queueTime.observe(result.timings.queueMs / 1000);
    this.tokenizeTime.observe(result.timings.tokenizeMs / 1000);
    this.inferenceTime.observe(result.timings.inferenceMs / 1000);
  }

  observeResponse(route: string, method: string, status: number, seconds: number): void {
    this.requests.inc({ route, method, status: String(status) });
    this.requestDuration.observe({ route }, seconds);
    const reason = status === 429 ? 'overloaded' : status === 504 ? 'deadline' : status === 499 ? 'dropped' : status === 503 ? 'unavailable' : null;
    if (reason) this.rejected.inc({ reason });
  }
}
