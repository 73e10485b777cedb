/**
 * Service configuration: every setting has an environment variable and a CLI flag (the flag wins),
 * documented in one table that also produces `--help` and the README's configuration section.
 */
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

export interface Config {
  host: string;
  port: number;
  modelDir: string;
  modelVariant: 'fp32' | 'quantized';
  onnxFile: string | undefined;
  workers: number | undefined;
  intraOpThreads: number | undefined;
  executionProviders: string[];
  inferenceNice: number;
  layerExit: string;
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

type Kind = 'string' | 'int' | 'list' | 'number';
interface Setting {
  key: keyof Config;
  env: string;
  flag: string;
  kind: Kind;
  default: string | undefined;
  help: string;
}

/** The one list of settings; README's table is generated from the same text. */
export const SETTINGS: Setting[] = [
  { key: 'host', env: 'HOST', flag: 'host', kind: 'string', default: '0.0.0.0', help: 'Address to listen on' },
  { key: 'port', env: 'PORT', flag: 'port', kind: 'int', default: '8080', help: 'Port to listen on' },
  { key: 'modelDir', env: 'MODEL_DIR', flag: 'model-dir', kind: 'string', default: 'models/default', help: 'Model directory (sentence-transformers / optimum layout)' },
  { key: 'modelVariant', env: 'MODEL_VARIANT', flag: 'model-variant', kind: 'string', default: 'fp32', help: '`fp32` serves model.onnx, `quantized` serves model_quantized.onnx' },
  { key: 'onnxFile', env: 'ONNX_FILE', flag: 'onnx-file', kind: 'string', default: undefined, help: 'Graph file inside the model directory, overriding the lookup' },
  { key: 'quantize', env: 'QUANTIZE', flag: 'quantize', kind: 'string', default: undefined, help: '`int8`: serve int8 weights (quantized at load and cached, or the directory\'s model_quantized.onnx); `none`: fp32; default: embedder.json `quantize`, else none' },
  { key: 'quantizeMinAgreement', env: 'QUANTIZE_MIN_AGREEMENT', flag: 'quantize-min-agreement', kind: 'number', default: '0.99', help: 'Least mean cosine between int8 and fp32 embeddings of fixed sentences for int8 to be served (else fp32, with a warning)' },
  { key: 'workers', env: 'WORKERS', flag: 'workers', kind: 'int', default: undefined, help: 'Inference workers (model instances); default min(cores, 4)' },
  { key: 'intraOpThreads', env: 'INTRA_OP_THREADS', flag: 'intra-op-threads', kind: 'int', default: undefined, help: 'ONNX Runtime threads per worker; default cores ÷ workers' },
  { key: 'executionProviders', env: 'EXECUTION_PROVIDERS', flag: 'execution-providers', kind: 'list', default: 'cpu', help: 'Execution providers in order of preference, e.g. `cuda,webgpu,cpu`' },
  { key: 'inferenceNice', env: 'INFERENCE_NICE', flag: 'inference-nice', kind: 'int', default: '10', help: 'Nice value of inference threads (Linux, 0–19): keeps the HTTP thread responsive under full load' },
  { key: 'layerExit', env: 'LAYER_EXIT', flag: 'layer-exit', kind: 'string', default: 'on', help: '`on`: split the graph per layer (cached beside the model) so `layer` skips compute and Token Prepending works; `off` saves the memory of the stages' },
  { key: 'maxBatchSize', env: 'MAX_BATCH_SIZE', flag: 'max-batch-size', kind: 'int', default: undefined, help: 'Most inputs per batch; default 64 (1 disables batching)' },
  { key: 'maxBatchTokens', env: 'MAX_BATCH_TOKENS', flag: 'max-batch-tokens', kind: 'int', default: undefined, help: 'Token budget per batch (size × longest input); default max(8192, max length)' },
  { key: 'maxQueueDelayMs', env: 'MAX_QUEUE_DELAY_MS', flag: 'max-queue-delay-ms', kind: 'int', default: undefined, help: 'How long an under-full batch waits for more inputs while a worker is free; default 0' },
  { key: 'maxQueueInputs', env: 'MAX_QUEUE_INPUTS', flag: 'max-queue-inputs', kind: 'int', default: undefined, help: 'Inputs allowed to wait before new requests get 429; default 4096' },
  { key: 'maxQueueTokens', env: 'MAX_QUEUE_TOKENS', flag: 'max-queue-tokens', kind: 'int', default: undefined, help: 'Tokens allowed to wait before new requests get 429; default max(262144, max length)' },
  { key: 'requestTimeoutMs', env: 'REQUEST_TIMEOUT_MS', flag: 'request-timeout-ms', kind: 'int', default: '30000', help: 'Default deadline per request (header `x-request-timeout-ms` overrides)' },
  { key: 'maxInputs', env: 'MAX_INPUTS', flag: 'max-inputs', kind: 'int', default: '2048', help: 'Most inputs per request (413 beyond; OpenAI allows 2048)' },
  { key: 'maxInputChars', env: 'MAX_INPUT_CHARS', flag: 'max-input-chars', kind: 'int', default: '100000', help: 'Most characters per input text (413 beyond)' },
  { key: 'bodyLimit', env: 'BODY_LIMIT', flag: 'body-limit', kind: 'int', default: String(8 * 1024 * 1024), help: 'Largest request body in bytes (413 beyond)' },
  { key: 'apiKeys', env: 'API_KEYS', flag: 'api-keys', kind: 'string', default: undefined, help: 'Comma-separated bearer API keys; when set (here or in the file), every route but the public ones needs one' },
  { key: 'apiKeysFile', env: 'API_KEYS_FILE', flag: 'api-keys-file', kind: 'string', default: undefined, help: 'File with one API key per line (`#` comments)' },
  { key: 'publicRoutes', env: 'AUTH_PUBLIC_ROUTES', flag: 'auth-public-routes', kind: 'list', default: '/health,/ready,/metrics', help: 'Routes reachable without a key' },
  { key: 'corsOrigins', env: 'CORS_ORIGINS', flag: 'cors-origins', kind: 'list', default: undefined, help: 'Allowed CORS origins, comma-separated, or `*`; CORS is off when unset' },
  { key: 'maxEventLoopDelayMs', env: 'MAX_EVENT_LOOP_DELAY_MS', flag: 'max-event-loop-delay-ms', kind: 'int', default: '1000', help: 'Event-loop lag beyond which requests are shed with 503 (0 = never); /health is never shed' },
  { key: 'maxConnections', env: 'MAX_CONNECTIONS', flag: 'max-connections', kind: 'int', default: undefined, help: 'Most open client connections; beyond it a new connection gets 503 and is closed. Default ¾ of the open-file limit (`ulimit -n`), at most 8192, so sockets can never exhaust file descriptors' },
  { key: 'headersTimeoutMs', env: 'HEADERS_TIMEOUT_MS', flag: 'headers-timeout-ms', kind: 'int', default: '10000', help: 'Longest a client may take to send its request headers (then 422 and the connection is closed)' },
  { key: 'requestReadTimeoutMs', env: 'REQUEST_READ_TIMEOUT_MS', flag: 'request-read-timeout-ms', kind: 'int', default: '30000', help: 'Longest a client may take to send a whole request, headers and body (then 422 and the connection is closed)' },
  { key: 'maxJsonDepth', env: 'MAX_JSON_DEPTH', flag: 'max-json-depth', kind: 'int', default: '64', help: 'Deepest nesting of arrays and objects accepted in a JSON body (422 beyond), checked before parsing' },
  { key: 'logLevel', env: 'LOG_LEVEL', flag: 'log-level', kind: 'string', default: 'info', help: 'pino log level' },
  { key: 'dataDir', env: 'DATA_DIR', flag: 'data-dir', kind: 'string', default: 'data', help: 'Where collections are stored (without STORE_URL)' },
  { key: 'storeUrl', env: 'STORE_URL', flag: 'store-url', kind: 'string', default: undefined, help: 'postgres://user:password@host:port/database: keep collections in PostgreSQL, shared by any number of replicas (instead of DATA_DIR)' },
  { key: 'shutdownTimeoutMs', env: 'SHUTDOWN_TIMEOUT_MS', flag: 'shutdown-timeout-ms', kind: 'int', default: '10000', help: 'How long SIGTERM waits for queued work' },
];

export class ConfigError extends Error {}

function convert(setting: Setting, raw: string): unknown {
  switch (setting.kind) {
    case 'string':
      return raw;
    case 'list':
      return raw.split(',').map((s) => s.trim()).filter(Boolean);
    case 'number': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n)) throw new ConfigError(`${setting.env} / --${setting.flag} must be a number, got ${JSON.stringify(raw)}`);
      return n;
    }
    case 'int': {
      if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${setting.env} / --${setting.flag} must be a positive integer, got ${JSON.stringify(raw)}`);
      const n = Number(raw);
      if (n < 1 && !['maxQueueDelayMs', 'inferenceNice', 'maxEventLoopDelayMs'].includes(setting.key)) throw new ConfigError(`${setting.env} / --${setting.flag} must be at least 1`);
      return n;
    }
  }
}

export function helpText(): string {
  const lines = ['Usage: npm start -- [flags]   (every flag also reads from its environment variable)', ''];
  for (const s of SETTINGS) {
    lines.push(`  --${s.flag.padEnd(22)} ${s.env.padEnd(22)} ${s.help}${s.default !== undefined ? ` (default: ${s.default})` : ''}`);
  }
  lines.push(`  --${'help'.padEnd(22)} ${''.padEnd(22)} Show this text`);
  return lines.join('\n');
}

/** Builds the configuration from flags, then the environment, then defaults. */
export function loadConfig(argv: string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): Config | 'help' {
  const options = Object.fromEntries(SETTINGS.map((s) => [s.flag, { type: 'string' as const }]));
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}\n\n${helpText()}`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help) return 'help';
  const config: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    const raw = (values[s.flag] as string | undefined) ?? env[s.env] ?? s.default;
    config[s.key] = raw === undefined || raw === '' ? undefined : convert(s, raw);
  }
  if (config.modelDir === 'models/default' && env.MODEL_DIR === undefined && values['model-dir'] === undefined) {
    config.modelDir = DEFAULT_MODEL_DIR;
  }
  if (config.modelVariant !== 'fp32' && config.modelVariant !== 'quantized') {
    throw new ConfigError(`MODEL_VARIANT must be fp32 or quantized, got ${String(config.modelVariant)}`);
  }
  if (config.quantize !== undefined && config.quantize !== 'int8' && config.quantize !== 'none') throw new ConfigError(`QUANTIZE must be int8 or none, got ${String(config.quantize)}`);
  if (config.layerExit !== 'on' && config.layerExit !== 'off') throw new ConfigError(`LAYER_EXIT must be on or off, got ${String(config.layerExit)}`);
  if ((config.inferenceNice as number) > 19) throw new ConfigError('INFERENCE_NICE must be in 0..19');
  if ((config.port as number) > 65535) throw new ConfigError('PORT must be at most 65535');
  return config as unknown as Config;
}
