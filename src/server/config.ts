/**
 * Service configuration: one schema (types, ranges, enums, defaults) validated by env-schema, where
 * every setting has an environment variable and a CLI flag (the flag wins). The same table produces
 * `--help` and the README's configuration section.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import envSchema from 'env-schema';

export interface Config {
  host: string;
  port: number;
  modelDir: string;
  /** Several models (`MODELS=name=dir,...`), the first the default; absent: MODEL_DIR as `default`. */
  models: Array<{ name: string; dir: string }> | undefined;
  scheduler: 'fair' | 'fifo';
  modelVariant: 'fp32' | 'quantized';
  onnxFile: string | undefined;
  workers: number | undefined;
  intraOpThreads: number | undefined;
  executionProviders: string[];
  inferenceNice: number;
  layerExit: string;
  memoryArena: string;
  quantize: string | undefined;
  quantizeMinAgreement: number;
  maxBatchSize: number | undefined;
  maxBatchTokens: number | undefined;
  maxQueueDelayMs: number | undefined;
  maxQueueInputs: number | undefined;
  maxQueueTokens: number | undefined;
  requestTimeoutMs: number;
  maxInputs: number;
  maxInputChars: number;
  bodyLimit: number;
  logLevel: string;
  dataDir: string;
  storeUrl: string | undefined;
  shutdownTimeoutMs: number;
  apiKeys: string | undefined;
  apiKeysFile: string | undefined;
  publicRoutes: string[];
  corsOrigins: string[] | undefined;
  maxEventLoopDelayMs: number;
  maxConnections: number | undefined;
  headersTimeoutMs: number;
  requestReadTimeoutMs: number;
  maxJsonDepth: number;
}

const DEFAULT_MODEL_DIR = fileURLToPath(new URL('../../models/default', import.meta.url));

interface Setting {
  key: keyof Config;
  env: string;
  flag: string;
  /** JSON schema of the value as given in the environment (env-schema coerces and checks it). */
  schema: {
    type: 'string' | 'integer' | 'number';
    default?: string | number;
    enum?: string[];
    separator?: string;
    minimum?: number;
    maximum?: number;
    minLength?: number;
  };
  help: string;
}

/** The one list of settings; README's table is generated from the same text. */
export const SETTINGS: Setting[] = [
  { key: 'host', env: 'HOST', flag: 'host', schema: { type: 'string', minLength: 1, default: '0.0.0.0' }, help: 'Address to listen on' },
  {
    key: 'port',
    env: 'PORT',
    flag: 'port',
    schema: { type: 'integer', minimum: 1, maximum: 65535, default: 8080 },
    help: 'Port to listen on',
  },
  {
    key: 'modelDir',
    env: 'MODEL_DIR',
    flag: 'model-dir',
    schema: { type: 'string', minLength: 1, default: 'models/default' },
    help: 'Model directory (sentence-transformers / optimum layout)',
  },
  {
    key: 'models',
    env: 'MODELS',
    flag: 'models',
    schema: { type: 'string', minLength: 1 },
    help: 'Several models in one process: `name=dir,name=dir,...` (embedders and rerankers; the first is the default); overrides MODEL_DIR',
  },
  {
    key: 'scheduler',
    env: 'SCHEDULER',
    flag: 'scheduler',
    schema: { type: 'string', enum: ['fair', 'fifo'], default: 'fair' },
    help: '`fair`: models share the workers by their use of them, so a flood for one cannot starve another; `fifo`: oldest input first whatever its model (the baseline fairness is measured against)',
  },
  {
    key: 'modelVariant',
    env: 'MODEL_VARIANT',
    flag: 'model-variant',
    schema: { type: 'string', enum: ['fp32', 'quantized'], default: 'fp32' },
    help: '`fp32` serves model.onnx, `quantized` serves model_quantized.onnx',
  },
  {
    key: 'onnxFile',
    env: 'ONNX_FILE',
    flag: 'onnx-file',
    schema: { type: 'string', minLength: 1 },
    help: 'Graph file inside the model directory, overriding the lookup',
  },
  {
    key: 'quantize',
    env: 'QUANTIZE',
    flag: 'quantize',
    schema: { type: 'string', enum: ['int8', 'none'] },
    help: "`int8`: serve int8 weights (quantized at load and cached, or the directory's model_quantized.onnx); `none`: fp32; default: embedder.json `quantize`, else none",
  },
  {
    key: 'quantizeMinAgreement',
    env: 'QUANTIZE_MIN_AGREEMENT',
    flag: 'quantize-min-agreement',
    schema: { type: 'number', minimum: 0, maximum: 1, default: 0.99 },
    help: 'Least mean cosine between int8 and fp32 embeddings of fixed sentences for int8 to be served (else fp32, with a warning)',
  },
  {
    key: 'workers',
    env: 'WORKERS',
    flag: 'workers',
    schema: { type: 'integer', minimum: 1 },
    help: 'Inference workers (model instances); default min(cores, 4)',
  },
  {
    key: 'intraOpThreads',
    env: 'INTRA_OP_THREADS',
    flag: 'intra-op-threads',
    schema: { type: 'integer', minimum: 1 },
    help: 'ONNX Runtime threads per worker; default cores ÷ workers',
  },
  {
    key: 'executionProviders',
    env: 'EXECUTION_PROVIDERS',
    flag: 'execution-providers',
    schema: { type: 'string', separator: ',', default: 'cpu' },
    help: 'Execution providers in order of preference, e.g. `cuda,webgpu,cpu`',
  },
  {
    key: 'inferenceNice',
    env: 'INFERENCE_NICE',
    flag: 'inference-nice',
    schema: { type: 'integer', minimum: 0, maximum: 19, default: 10 },
    help: 'Nice value of inference threads (Linux, 0–19): keeps the HTTP thread responsive under full load',
  },
  {
    key: 'layerExit',
    env: 'LAYER_EXIT',
    flag: 'layer-exit',
    schema: { type: 'string', enum: ['on', 'off'], default: 'on' },
    help: '`on`: split the graph per layer (cached beside the model) so `layer` skips compute and Token Prepending works; the stages share the weights with full depth, so this costs no memory',
  },
  {
    key: 'memoryArena',
    env: 'MEMORY_ARENA',
    flag: 'memory-arena',
    schema: { type: 'string', enum: ['on', 'off'], default: 'off' },
    help: "`on`: ONNX Runtime keeps a memory arena per graph session at its largest batch's peak (a few % faster on big batches, several times the memory with layer exit); `off` returns activations after each batch",
  },
  {
    key: 'maxBatchSize',
    env: 'MAX_BATCH_SIZE',
    flag: 'max-batch-size',
    schema: { type: 'integer', minimum: 1 },
    help: 'Most inputs per batch; default 64 (1 disables batching)',
  },
  {
    key: 'maxBatchTokens',
    env: 'MAX_BATCH_TOKENS',
    flag: 'max-batch-tokens',
    schema: { type: 'integer', minimum: 1 },
    help: 'Token budget per batch (size × longest input); default max(8192, max length)',
  },
  {
    key: 'maxQueueDelayMs',
    env: 'MAX_QUEUE_DELAY_MS',
    flag: 'max-queue-delay-ms',
    schema: { type: 'integer', minimum: 0 },
    help: 'How long an under-full batch waits for more inputs while a worker is free; default 0',
  },
  {
    key: 'maxQueueInputs',
    env: 'MAX_QUEUE_INPUTS',
    flag: 'max-queue-inputs',
    schema: { type: 'integer', minimum: 1 },
    help: 'Inputs allowed to wait before new requests get 429; default 4096',
  },
  {
    key: 'maxQueueTokens',
    env: 'MAX_QUEUE_TOKENS',
    flag: 'max-queue-tokens',
    schema: { type: 'integer', minimum: 1 },
    help: 'Tokens allowed to wait before new requests get 429; default max(262144, max length)',
  },
  {
    key: 'requestTimeoutMs',
    env: 'REQUEST_TIMEOUT_MS',
    flag: 'request-timeout-ms',
    schema: { type: 'integer', minimum: 1, default: 30000 },
    help: 'Default deadline per request (header `x-request-timeout-ms` overrides)',
  },
  {
    key: 'maxInputs',
    env: 'MAX_INPUTS',
    flag: 'max-inputs',
    schema: { type: 'integer', minimum: 1, default: 2048 },
    help: 'Most inputs per request (413 beyond; OpenAI allows 2048)',
  },
  {
    key: 'maxInputChars',
    env: 'MAX_INPUT_CHARS',
    flag: 'max-input-chars',
    schema: { type: 'integer', minimum: 1, default: 100000 },
    help: 'Most characters per input text (413 beyond)',
  },
  {
    key: 'bodyLimit',
    env: 'BODY_LIMIT',
    flag: 'body-limit',
    schema: { type: 'integer', minimum: 1, default: 8 * 1024 * 1024 },
    help: 'Largest request body in bytes (413 beyond)',
  },
  {
    key: 'apiKeys',
    env: 'API_KEYS',
    flag: 'api-keys',
    schema: { type: 'string', minLength: 1 },
    help: 'Comma-separated bearer API keys; when set (here or in the file), every route but the public ones needs one',
  },
  {
    key: 'apiKeysFile',
    env: 'API_KEYS_FILE',
    flag: 'api-keys-file',
    schema: { type: 'string', minLength: 1 },
    help: 'File with one API key per line (`#` comments)',
  },
  {
    key: 'publicRoutes',
    env: 'AUTH_PUBLIC_ROUTES',
    flag: 'auth-public-routes',
    schema: { type: 'string', separator: ',', default: '/health,/ready,/metrics' },
    help: 'Routes reachable without a key',
  },
  {
    key: 'corsOrigins',
    env: 'CORS_ORIGINS',
    flag: 'cors-origins',
    schema: { type: 'string', separator: ',' },
    help: 'Allowed CORS origins, comma-separated, or `*`; CORS is off when unset',
  },
  {
    key: 'maxEventLoopDelayMs',
    env: 'MAX_EVENT_LOOP_DELAY_MS',
    flag: 'max-event-loop-delay-ms',
    schema: { type: 'integer', minimum: 0, default: 1000 },
    help: 'Event-loop lag beyond which requests are shed with 503 (0 = never); /health is never shed',
  },
  {
    key: 'maxConnections',
    env: 'MAX_CONNECTIONS',
    flag: 'max-connections',
    schema: { type: 'integer', minimum: 1 },
    help: 'Most open client connections; beyond it a new connection gets 503 and is closed. Default ¾ of the open-file limit (`ulimit -n`), at most 8192, so sockets can never exhaust file descriptors',
  },
  {
    key: 'headersTimeoutMs',
    env: 'HEADERS_TIMEOUT_MS',
    flag: 'headers-timeout-ms',
    schema: { type: 'integer', minimum: 1, default: 10000 },
    help: 'Longest a client may take to send its request headers (then 422 and the connection is closed)',
  },
  {
    key: 'requestReadTimeoutMs',
    env: 'REQUEST_READ_TIMEOUT_MS',
    flag: 'request-read-timeout-ms',
    schema: { type: 'integer', minimum: 1, default: 30000 },
    help: 'Longest a client may take to send a whole request, headers and body (then 422 and the connection is closed)',
  },
  {
    key: 'maxJsonDepth',
    env: 'MAX_JSON_DEPTH',
    flag: 'max-json-depth',
    schema: { type: 'integer', minimum: 1, default: 64 },
    help: 'Deepest nesting of arrays and objects accepted in a JSON body (422 beyond), checked before parsing',
  },
  {
    key: 'logLevel',
    env: 'LOG_LEVEL',
    flag: 'log-level',
    schema: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
    help: 'pino log level',
  },
  {
    key: 'dataDir',
    env: 'DATA_DIR',
    flag: 'data-dir',
    schema: { type: 'string', minLength: 1, default: 'data' },
    help: 'Where collections are stored (without STORE_URL)',
  },
  {
    key: 'storeUrl',
    env: 'STORE_URL',
    flag: 'store-url',
    schema: { type: 'string', minLength: 1 },
    help: 'postgres://user:password@host:port/database: keep collections in PostgreSQL, shared by any number of replicas (instead of DATA_DIR)',
  },
  {
    key: 'shutdownTimeoutMs',
    env: 'SHUTDOWN_TIMEOUT_MS',
    flag: 'shutdown-timeout-ms',
    schema: { type: 'integer', minimum: 1, default: 10000 },
    help: 'How long SIGTERM waits for queued work',
  },
];

export class ConfigError extends Error {}

export function helpText(): string {
  const lines = ['Usage: npm start -- [flags]   (every flag also reads from its environment variable)', ''];
  for (const s of SETTINGS) {
    const d = s.schema.default;
    lines.push(`  --${s.flag.padEnd(22)} ${s.env.padEnd(22)} ${s.help}${d !== undefined ? ` (default: ${d})` : ''}`);
  }
  lines.push(`  --${'help'.padEnd(22)} ${''.padEnd(22)} Show this text`);
  return lines.join('\n');
}

const SCHEMA = {
  type: 'object',
  properties: Object.fromEntries(SETTINGS.map((s) => [s.env, s.schema])),
};

/** Builds the configuration from flags, then the environment, then defaults. */
export function loadConfig(argv: string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): Config | 'help' {
  const options = Object.fromEntries(SETTINGS.map((s) => [s.flag, { type: 'string' as const }]));
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}\n\n${helpText()}`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help) return 'help';
  // Flags are given under their variable's name; an empty value means "not set".
  const given: Record<string, string> = {};
  for (const s of SETTINGS) {
    const raw = (values[s.flag] as string | undefined) ?? env[s.env];
    if (raw !== undefined && raw.trim() !== '') given[s.env] = raw.trim();
  }
  let checked: Record<string, unknown>;
  try {
    checked = envSchema({ schema: SCHEMA, data: given, env: false });
  } catch (err) {
    const s = SETTINGS.find((x) => (err as Error).message.includes(`/${x.env} `));
    throw new ConfigError(
      s
        ? `${s.env} / --${s.flag}: ${(err as Error).message.replace(/^.*?\/\w+ /, '')}, got ${JSON.stringify(given[s.env])}`
        : (err as Error).message,
    );
  }
  const config: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    const v = checked[s.env];
    config[s.key] = Array.isArray(v) ? v.map((x: string) => x.trim()).filter(Boolean) : v;
  }
  if (given.MODEL_DIR === undefined) config.modelDir = DEFAULT_MODEL_DIR;
  if (config.models !== undefined) config.models = parseModels(config.models as string);
  return config as unknown as Config;
}

/** `name=dir,name=dir,...` → the models in order; names must be unique. */
export function parseModels(raw: string): Array<{ name: string; dir: string }> {
  const models = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((item) => {
      const at = item.indexOf('=');
      const name = item.slice(0, at).trim();
      const dir = item.slice(at + 1).trim();
      if (at <= 0 || dir === '') throw new ConfigError(`MODELS / --models: each entry is name=dir, got ${JSON.stringify(item)}`);
      return { name, dir };
    });
  if (models.length === 0) throw new ConfigError('MODELS / --models names no model');
  const names = models.map((m) => m.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) throw new ConfigError(`MODELS / --models: model name ${twice} is given twice`);
  return models;
}
