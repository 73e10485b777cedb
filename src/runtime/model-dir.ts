/**
 * Reads a model directory in the layouts users already have (optimum, sentence-transformers,
 * Xenova/onnx-community) into one resolved description of the model. Everything the rest of the
 * runtime needs to know about a model comes from here, decided once at start-up; a directory that
 * cannot be served fails here with a message naming the file at fault.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { POOLING_MODES, type PoolingMode } from '../pooling/index.js';

export class ModelDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelDirError';
  }
}

export interface TokenPrependingSpec {
  /** Placeholder token string; must exist in the tokenizer's vocabulary. */
  placeholder: string;
  /** Its id, resolved against tokenizer.json. */
  placeholderId: number;
  /** First and last layer (1-based, inclusive) after which the placeholder state is overwritten. */
  firstLayer: number;
  lastLayer: number;
}

/** What a model computes: embeddings (a bi-encoder) or relevance scores of text pairs (a cross-encoder). */
export type ModelTask = 'embed' | 'rerank';

export interface ModelSpec {
  /** Absolute path of the directory. */
  dir: string;
  /** `rerank`: a sequence-classification graph scoring (query, document) pairs (output `logits` [n, 1]). */
  task: ModelTask;
  /** Name reported to clients (config `_name_or_path` basename, else the directory name). */
  id: string;
  /** The ONNX graph that is served. */
  onnxPath: string;
  tokenizerPath: string;
  modelType: string;
  /** Width of the token states, and so of full-size embeddings. */
  hiddenSize: number;
  /** Transformer layers in the graph (`layer` requests address 1..numLayers). */
  numLayers: number;
  /** Maximum input length in tokens, special tokens included (MODELS.md precedence, capped at positions). */
  maxLength: number;
  /** Which side the model expects padding on (decoders pad left). */
  paddingSide: 'left' | 'right';
  pooling: PoolingMode;
  /** sentence-transformers `include_prompt`: when false, prompt tokens are left out of pooling. */
  includePrompt: boolean;
  /** Whether modules.json ends in a Normalize module (informational: `normalize` defaults to true). */
  normalizeModule: boolean;
  /** Named prompts (name → prefix) from config_sentence_transformers.json. */
  prompts: Record<string, string>;
  defaultPromptName: string | null;
  similarity: string;
  /** Template for free-form instructions: `{instruction}` and `{text}` are substituted. */
  instructionTemplate: string | null;
  /** When set, the only `dimensions` accepted. */
  matryoshkaDimensions: number[] | null;
  /** When set, the only `layer` values accepted. */
  exitLayers: number[] | null;
  finalNormOnExit: boolean;
  untrained: boolean;
  /** embedder.json `quantize`: serve int8 unless configured otherwise. */
  quantize: 'int8' | null;
  tokenPrepending: Omit<TokenPrependingSpec, 'placeholderId'> | null;
  /** embedder.json `calibration`: sentences whose embeddings set the int8/uint8 output ranges (else the built-in set). */
  calibration: { file: string; sentences: string[] } | null;
}

type Json = Record<string, unknown>;

function readJson(dir: string, file: string, required: boolean): Json | null {
  const path = join(dir, file);
  if (!existsSync(path)) {
    if (required) throw new ModelDirError(`model directory ${dir} has no ${file}`);
    return null;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ModelDirError(`${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ModelDirError(`${path} must hold a JSON object`);
  }
  return parsed as Json;
}

function positiveInt(value: unknown): number | null {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : null;
}

function firstPositiveInt(obj: Json, keys: string[]): number | null {
  for (const k of keys) {
    const v = positiveInt(obj[k]);
    if (v !== null) return v;
  }
  return null;
}

/** The calibration sentences file named by embedder.json: one sentence a line, blank lines ignored. */
function calibrationFile(dir: string, value: unknown): { file: string; sentences: string[] } | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value === '') throw new ModelDirError('embedder.json: calibration must be a file name');
  const path = resolve(dir, value);
  if (!existsSync(path)) throw new ModelDirError(`embedder.json: calibration file ${path} does not exist`);
  const sentences = readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
  if (sentences.length === 0) throw new ModelDirError(`embedder.json: calibration file ${path} has no sentences`);
  return { file: value, sentences };
}

function intList(value: unknown, file: string, key: string, max: number): number[] | null {
  if (value === undefined || value === null) return null;
  if (!Array.isArray(value) || value.length === 0 || !value.every((v) => positiveInt(v) !== null && v <= max)) {
    throw new ModelDirError(`${file}: ${key} must be a non-empty list of integers in 1..${max}`);
  }
  return [...new Set(value as number[])].sort((a, b) => a - b);
}

/** Finds the graph: an explicit file wins, then `model.onnx`, then `onnx/model.onnx` (quantized variants by name). */
function findOnnx(dir: string, variant: 'fp32' | 'quantized', explicitFile?: string): string {
  if (explicitFile) {
    const p = resolve(dir, explicitFile);
    if (!existsSync(p)) throw new ModelDirError(`model directory ${dir} has no ${explicitFile} (ONNX_FILE)`);
    return p;
  }
  const names = variant === 'quantized' ? ['model_quantized.onnx'] : ['model.onnx'];
  for (const name of names) {
    for (const sub of ['', 'onnx']) {
      const p = join(dir, sub, name);
      if (existsSync(p)) return p;
    }
  }
  throw new ModelDirError(`model directory ${dir} has no ${names[0]} (looked in ${dir} and ${join(dir, 'onnx')})`);
}

function poolingFromSentenceTransformers(cfg: Json): PoolingMode | null {
  if (cfg.pooling_mode_lasttoken === true) return 'last';
  if (cfg.pooling_mode_cls_token === true) return 'cls';
  if (cfg.pooling_mode_max_tokens === true) return 'max';
  if (cfg.pooling_mode_mean_tokens === true) return 'mean';
  return null;
}

/**
 * A cross-encoder is what Hugging Face calls a sequence classifier with one label; embedder.json
 * `task` says so explicitly for exports whose config does not.
 */
function taskOf(dir: string, config: Json, embedder: Json): ModelTask {
  let task: ModelTask = 'embed';
  if (embedder.task !== undefined) {
    if (embedder.task !== 'embed' && embedder.task !== 'rerank') {
      throw new ModelDirError(`embedder.json: task must be "embed" or "rerank", got ${JSON.stringify(embedder.task)}`);
    }
    task = embedder.task;
  } else if (
    Array.isArray(config.architectures) &&
    config.architectures.some((a) => typeof a === 'string' && a.endsWith('ForSequenceClassification'))
  ) {
    task = 'rerank';
  }
  if (task === 'rerank') {
    const labels =
      config.id2label && typeof config.id2label === 'object' ? Object.keys(config.id2label).length : (positiveInt(config.num_labels) ?? 1);
    if (labels !== 1) {
      throw new ModelDirError(
        `${join(dir, 'config.json')}: a reranker scores with one logit per pair, but this classifier has ${labels} labels`,
      );
    }
  }
  return task;
}

function quantizeSetting(value: unknown): 'int8' | null {
  if (value === undefined || value === null || value === 'none') return null;
  if (value === 'int8') return 'int8';
  throw new ModelDirError(`embedder.json: quantize must be "int8" or "none", got ${JSON.stringify(value)}`);
}

export interface LoadModelOptions {
  /** Serve `model_quantized.onnx` instead of `model.onnx`. */
  variant?: 'fp32' | 'quantized';
  /** A graph file relative to the directory, overriding the lookup. */
  onnxFile?: string;
}

export function loadModelDir(dirArg: string, options: LoadModelOptions = {}): ModelSpec {
  const dir = resolve(dirArg);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new ModelDirError(`model directory ${dir} does not exist`);
  }
  const onnxPath = findOnnx(dir, options.variant ?? 'fp32', options.onnxFile);
  const tokenizerPath = join(dir, 'tokenizer.json');
  if (!existsSync(tokenizerPath)) throw new ModelDirError(`model directory ${dir} has no tokenizer.json`);

  const config = readJson(dir, 'config.json', true)!;
  const tokCfg = readJson(dir, 'tokenizer_config.json', false) ?? {};
  const poolCfg = readJson(dir, join('1_Pooling', 'config.json'), false);
  const sbertCfg = readJson(dir, 'sentence_bert_config.json', false) ?? {};
  const stCfg = readJson(dir, 'config_sentence_transformers.json', false) ?? {};
  const embedder = readJson(dir, 'embedder.json', false) ?? {};
  const modulesPath = join(dir, 'modules.json');
  let modules: unknown[] = [];
  if (existsSync(modulesPath)) {
    try {
      modules = JSON.parse(readFileSync(modulesPath, 'utf8')) as unknown[];
    } catch (err) {
      throw new ModelDirError(`${modulesPath} is not valid JSON: ${(err as Error).message}`);
    }
    if (!Array.isArray(modules)) throw new ModelDirError(`${modulesPath} must hold a JSON list`);
  }

  const hiddenSize = firstPositiveInt(config, ['hidden_size', 'd_model', 'n_embd', 'dim']);
  if (hiddenSize === null) throw new ModelDirError(`${join(dir, 'config.json')}: no hidden_size`);
  const numLayers = firstPositiveInt(config, ['num_hidden_layers', 'n_layer', 'num_layers', 'n_layers']);
  if (numLayers === null) throw new ModelDirError(`${join(dir, 'config.json')}: no num_hidden_layers`);
  const maxPositions = firstPositiveInt(config, ['max_position_embeddings', 'n_positions', 'max_seq_len']);
  const modelType = typeof config.model_type === 'string' ? config.model_type : 'unknown';

  // Precedence from MODELS.md; absurd values (bge's 1e30 model_max_length) fall to the position cap.
  const declared = positiveInt(embedder.max_length) ?? positiveInt(sbertCfg.max_seq_length) ?? positiveInt(tokCfg.model_max_length);
  const candidates = [declared, maxPositions].filter((v): v is number => v !== null);
  if (candidates.length === 0) {
    throw new ModelDirError(`${dir}: no maximum length (config.json max_position_embeddings or a max length setting)`);
  }
  const maxLength = Math.min(...candidates);

  let pooling: PoolingMode = 'mean';
  if (embedder.pooling !== undefined) {
    if (!POOLING_MODES.includes(embedder.pooling as PoolingMode)) {
      throw new ModelDirError(`embedder.json: pooling must be one of ${POOLING_MODES.join(', ')}`);
    }
    pooling = embedder.pooling as PoolingMode;
  } else if (poolCfg) {
    pooling = poolingFromSentenceTransformers(poolCfg) ?? 'mean';
  }

  const paddingSide = tokCfg.padding_side === 'left' ? 'left' : 'right';

  // No prototype: a prompt name is looked up as an own property only (`constructor` is no prompt).
  const prompts: Record<string, string> = Object.create(null) as Record<string, string>;
  if (stCfg.prompts !== undefined) {
    if (stCfg.prompts === null || typeof stCfg.prompts !== 'object' || Array.isArray(stCfg.prompts)) {
      throw new ModelDirError('config_sentence_transformers.json: prompts must be an object of name → prefix');
    }
    for (const [name, prefix] of Object.entries(stCfg.prompts as Json)) {
      if (typeof prefix !== 'string') {
        throw new ModelDirError(`config_sentence_transformers.json: prompt ${name} must be a string`);
      }
      prompts[name] = prefix;
    }
  }
  const defaultPromptName = typeof stCfg.default_prompt_name === 'string' ? stCfg.default_prompt_name : null;
  if (defaultPromptName !== null && !Object.hasOwn(prompts, defaultPromptName)) {
    throw new ModelDirError(`config_sentence_transformers.json: default_prompt_name ${defaultPromptName} is not in prompts`);
  }

  let tokenPrepending: ModelSpec['tokenPrepending'] = null;
  if (embedder.token_prepending !== undefined && embedder.token_prepending !== null) {
    const tp = embedder.token_prepending as Json;
    const firstLayer = positiveInt(tp.first_layer);
    const lastLayer = positiveInt(tp.last_layer);
    if (
      typeof tp.placeholder !== 'string' ||
      firstLayer === null ||
      lastLayer === null ||
      firstLayer > lastLayer ||
      lastLayer > numLayers
    ) {
      throw new ModelDirError(`embedder.json: token_prepending needs placeholder (string) and 1 ≤ first_layer ≤ last_layer ≤ ${numLayers}`);
    }
    tokenPrepending = { placeholder: tp.placeholder, firstLayer, lastLayer };
  }

  const nameOrPath = typeof config._name_or_path === 'string' && config._name_or_path ? config._name_or_path : '';
  const id = nameOrPath.replace(/\/+$/, '').split('/').pop() || basename(dir);

  return {
    dir,
    task: taskOf(dir, config, embedder),
    id,
    onnxPath,
    tokenizerPath,
    modelType,
    hiddenSize,
    numLayers,
    maxLength,
    paddingSide,
    pooling,
    includePrompt: poolCfg?.include_prompt !== false,
    normalizeModule: modules.some((m) => typeof m === 'object' && m !== null && String((m as Json).type ?? '').endsWith('Normalize')),
    prompts,
    defaultPromptName,
    similarity: typeof stCfg.similarity_fn_name === 'string' ? stCfg.similarity_fn_name : 'cosine',
    instructionTemplate: typeof embedder.instruction_template === 'string' ? embedder.instruction_template : null,
    matryoshkaDimensions: intList(embedder.matryoshka_dimensions, 'embedder.json', 'matryoshka_dimensions', hiddenSize),
    exitLayers: intList(embedder.exit_layers, 'embedder.json', 'exit_layers', numLayers),
    finalNormOnExit: embedder.final_norm_on_exit === true,
    untrained: embedder.untrained === true,
    quantize: quantizeSetting(embedder.quantize),
    tokenPrepending,
    calibration: calibrationFile(dir, embedder.calibration),
  };
}
