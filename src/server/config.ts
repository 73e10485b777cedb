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

type Schema = {
  type: 'string' | 'integer' | 'number';
  default?: string | number;
  enum?: string[];
  separator?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
};

interface Setting {
  key: keyof Config;
  env: string;
  flag: string;
  /** JSON schema of the value as given in the environment (env-schema coerces and checks it). */
  schema: Schema;
  help: string;
}

// The schema shapes the settings use.
const text = (fallback?: string): Schema => ({ type: 'string', minLength: 1, ...(fallback !== undefined && { default: fallback }) });
const oneOf = (values: string[], fallback?: string): Schema => ({
  type: 'string',
  enum: values,
  ...(fallback !== undefined && { default: fallback }),
});
const list = (fallback?: string): Schema => ({ type: 'string', separator: ',', ...(fallback !== undefined && { default: fallback }) });
const integer = (range: Pick<Schema, 'minimum' | 'maximum' | 'default'>): Schema => ({ type: 'integer', ...range });
const number = (range: Pick<Schema, 'minimum' | 'maximum' | 'default'>): Schema => ({ type: 'number', ...range });

/**
 * Every setting once, in the order of `--help` and the README: its Config key → environment
 * variable, schema, help. The CLI flag is the variable's name in lower case with dashes.
 */
// biome-ignore format: a table, one setting a line
const TABLE: Record<keyof Config, [env: string, schema: Schema, help: string]> = {
  host: ['HOST', text('0.0.0.0'), 'Address to listen on'],
  port: ['PORT', integer({ minimum: 1, maximum: 65535, default: 8080 }), 'Port to listen on'],
  modelDir: ['MODEL_DIR', text('models/default'), 'Model directory (sentence-transformers / optimum layout)'],
  models: ['MODELS', text(), 'Several models in one process: `name=dir,name=dir,...` (embedders and rerankers; the first is the default); overrides MODEL_DIR'],
  scheduler: ['SCHEDULER', oneOf(['fair', 'fifo'], 'fair'), '`fair`: models share the workers by their use of them, so a flood for one cannot starve another; `fifo`: oldest input first whatever its model (the baseline fairness is measured against)'],
  modelVariant: ['MODEL_VARIANT', oneOf(['fp32', 'quantized'], 'fp32'), '`fp32` serves model.onnx, `quantized` serves model_quantized.onnx'],
  onnxFile: ['ONNX_FILE', text(), 'Graph file inside the model directory, overriding the lookup'],
  quantize: ['QUANTIZE', oneOf(['int8', 'none']), "`int8`: serve int8 weights (quantized at load and cached, or the directory's model_quantized.onnx); `none`: fp32; default: embedder.json `quantize`, else none"],
  quantizeMinAgreement: ['QUANTIZE_MIN_AGREEMENT', number({ minimum: 0, maximum: 1, default: 0.99 }), 'Least mean cosine between int8 and fp32 embeddings of fixed sentences for int8 to be served (else fp32, with a warning)'],
  workers: ['WORKERS', integer({ minimum: 1 }), 'Inference workers (model instances); default min(cores, 4)'],
  intraOpThreads: ['INTRA_OP_THREADS', integer({ minimum: 1 }), 'ONNX Runtime threads per worker; default cores ÷ workers'],
  executionProviders: ['EXECUTION_PROVIDERS', list('cpu'), 'Execution providers in order of preference, e.g. `cuda,webgpu,cpu`'],
  inferenceNice: ['INFERENCE_NICE', integer({ minimum: 0, maximum: 19, default: 10 }), 'Nice value of inference threads (Linux, 0–19): keeps the HTTP thread responsive under full load'],
  layerExit: ['LAYER_EXIT', oneOf(['on', 'off'], 'on'), '`on`: split the graph per layer (cached beside the model) so `layer` skips compute and Token Prepending works; the stages share the weights with full depth, so this costs no memory'],
  memoryArena: ['MEMORY_ARENA', oneOf(['on', 'off'], 'off'), "`on`: ONNX Runtime keeps a memory arena per graph session at its largest batch's peak (a few % faster on big batches, several times the memory with layer exit); `off` returns activations after each batch"],
  maxBatchSize: ['MAX_BATCH_SIZE', integer({ minimum: 1 }), 'Most inputs per batch; default 64 (1 disables batching)'],
  maxBatchTokens: ['MAX_BATCH_TOKENS', integer({ minimum: 1 }), 'Token budget per batch (size × longest input); default max(8192, max length)'],
  maxQueueDelayMs: ['MAX_QUEUE_DELAY_MS', integer({ minimum: 0 }), 'How long an under-full batch waits for more inputs while a worker is free; default 0'],
  maxQueueInputs: ['MAX_QUEUE_INPUTS', integer({ minimum: 1 }), 'Inputs allowed to wait before new requests get 429; default 4096'],
  maxQueueTokens: ['MAX_QUEUE_TOKENS', integer({ minimum: 1 }), 'Tokens allowed to wait before new requests get 429; default max(262144, max length)'],
  requestTimeoutMs: ['REQUEST_TIMEOUT_MS', integer({ minimum: 1, default: 30000 }), 'Default deadline per request (header `x-request-timeout-ms` overrides)'],
  maxInputs: ['MAX_INPUTS', integer({ minimum: 1, default: 2048 }), 'Most inputs per request (413 beyond; OpenAI allows 2048)'],
  maxInputChars: ['MAX_INPUT_CHARS', integer({ minimum: 1, default: 100000 }), 'Most characters per input text (413 beyond)'],
  bodyLimit: ['BODY_LIMIT', integer({ minimum: 1, default: 8 * 1024 * 1024 }), 'Largest request body in bytes (413 beyond)'],
  apiKeys: ['API_KEYS', text(), 'Comma-separated bearer API keys; when set (here or in the file), every route but the public ones needs one'],
  apiKeysFile: ['API_KEYS_FILE', text(), 'File with one API key per line (`#` comments)'],
  publicRoutes: ['AUTH_PUBLIC_ROUTES', list('/health,/ready,/metrics'), 'Routes reachable without a key'],
  corsOrigins: ['CORS_ORIGINS', list(), 'Allowed CORS origins, comma-separated, or `*`; CORS is off when unset'],
  maxEventLoopDelayMs: ['MAX_EVENT_LOOP_DELAY_MS', integer({ minimum: 0, default: 1000 }), 'Event-loop lag beyond which requests are shed with 503 (0 = never); /health is never shed'],
  maxConnections: ['MAX_CONNECTIONS', integer({ minimum: 1 }), 'Most open client connections; beyond it a new connection gets 503 and is closed. Default ¾ of the open-file limit (`ulimit -n`), at most 8192, so sockets can never exhaust file descriptors'],
  headersTimeoutMs: ['HEADERS_TIMEOUT_MS', integer({ minimum: 1, default: 10000 }), 'Longest a client may take to send its request headers (then 422 and the connection is closed)'],
  requestReadTimeoutMs: ['REQUEST_READ_TIMEOUT_MS', integer({ minimum: 1, default: 30000 }), 'Longest a client may take to send a whole request, headers and body (then 422 and the connection is closed)'],
  maxJsonDepth: ['MAX_JSON_DEPTH', integer({ minimum: 1, default: 64 }), 'Deepest nesting of arrays and objects accepted in a JSON body (422 beyond), checked before parsing'],
  logLevel: ['LOG_LEVEL', oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'), 'pino log level'],
  dataDir: ['DATA_DIR', text('data'), 'Where collections are stored (without STORE_URL)'],
  storeUrl: ['STORE_URL', text(), 'postgres://user:password@host:port/database: keep collections in PostgreSQL, shared by any number of replicas (instead of DATA_DIR)'],
  shutdownTimeoutMs: ['SHUTDOWN_TIMEOUT_MS', integer({ minimum: 1, default: 10000 }), 'How long SIGTERM waits for queued work'],
};

/** The one list of settings; README's table is generated from the same text. */
export const SETTINGS: Setting[] = Object.entries(TABLE).map(([key, [env, schema, help]]) => ({
  key: key as keyof Config,
  env,
  flag: env.toLowerCase().replaceAll('_', '-'),
  schema,
  help,
}));

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
