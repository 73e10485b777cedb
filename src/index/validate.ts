import { ValidationError } from './errors.js';
import { DEFAULT_ALPHA, DEFAULT_RRF_K } from './fusion.js';
import { DEFAULT_B, DEFAULT_K1 } from './lexical.js';
import type {
  CollectionSettings,
  CollectionSettingsInput,
  DocumentInput,
  IncludeField,
  Metric,
  SearchMode,
  SearchOptions,
  StoragePrecision,
} from './types.js';

/**
 * Input checks shared by the store and the collections. Everything a caller
 * hands in is checked here before anything is logged, so a ValidationError
 * always means "nothing was written".
 */

export const NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const MAX_ID_LENGTH = 256;
export const MAX_DIMENSIONS = 65_536;
const MAX_METADATA_DEPTH = 64;
const METRICS: readonly Metric[] = ['cosine', 'ip', 'l2'];
const INCLUDE_FIELDS: readonly IncludeField[] = ['text', 'metadata', 'vector'];
const STORAGE: readonly StoragePrecision[] = ['float32', 'float16', 'int8'];
const MODES: readonly SearchMode[] = ['dense', 'lexical', 'hybrid'];

export const DEFAULT_M = 16;
export const DEFAULT_EF_CONSTRUCTION = 200;

/**
 * Collection names become directory names, so the pattern (no dots, no
 * slashes) is what keeps `../x` and friends out of the data dir.
 */
export function validateName(name: unknown): string {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw new ValidationError(`collection name must be 1-64 characters of [A-Za-z0-9_-], got ${JSON.stringify(name)}`);
  }
  if (RESERVED_NAME.test(name)) {
    throw new ValidationError(`collection name ${JSON.stringify(name)} is a reserved device name on Windows filesystems; choose another`);
  }
  return name;
}

/** Names Windows reserves for devices in any directory (CON, NUL, COM1, …), in any case. */
const RESERVED_NAME = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])$/i;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function checkInt(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ValidationError(`${field} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
  }
  return v;
}

function checkKeys(obj: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) throw new ValidationError(`unknown field ${where}${key}`);
  }
}

/** Fills defaults; the result is what gets persisted and compared on re-create. */
export function normalizeSettings(input: unknown): CollectionSettings {
  if (!isPlainObject(input)) throw new ValidationError('settings must be an object');
  const s = input as Partial<CollectionSettingsInput> & Record<string, unknown>;
  checkKeys(
    s,
    [
      'metric',
      'dimensions',
      'layer',
      'document_prompt_name',
      'query_prompt_name',
      'hnsw',
      'lexical',
      'index_dimensions',
      'storage',
      'model',
    ],
    'settings.',
  );
  const metric = s.metric ?? 'cosine';
  if (!METRICS.includes(metric)) {
    throw new ValidationError(`settings.metric must be one of ${METRICS.join(', ')}, got ${JSON.stringify(s.metric)}`);
  }
  const dimensions = checkInt(s.dimensions, 'settings.dimensions', 1, MAX_DIMENSIONS);
  const hnswIn = s.hnsw ?? {};
  if (!isPlainObject(hnswIn)) throw new ValidationError('settings.hnsw must be an object');
  checkKeys(hnswIn, ['m', 'ef_construction'], 'settings.hnsw.');
  const m = hnswIn.m === undefined ? DEFAULT_M : checkInt(hnswIn.m, 'settings.hnsw.m', 2, 256);
  const efc =
    hnswIn.ef_construction === undefined
      ? DEFAULT_EF_CONSTRUCTION
      : checkInt(hnswIn.ef_construction, 'settings.hnsw.ef_construction', 1, 100_000);

  // Optional fields are only present when given, so persisted settings compare equal by value.
  const out: CollectionSettings = { metric, dimensions, hnsw: { m, ef_construction: efc } };
  if (s.layer !== undefined) {
    if (typeof s.layer !== 'number' || !Number.isInteger(s.layer)) {
      throw new ValidationError(`settings.layer must be an integer, got ${JSON.stringify(s.layer)}`);
    }
    out.layer = s.layer;
  }
  for (const key of ['document_prompt_name', 'query_prompt_name', 'model'] as const) {
    const v = s[key];
    if (v === undefined) continue;
    if (typeof v !== 'string' || v.length === 0 || v.length > 256) {
      throw new ValidationError(`settings.${key} must be a non-empty string of at most 256 characters`);
    }
    out[key] = v;
  }
  if (s.lexical !== undefined && s.lexical !== false) {
    if (s.lexical !== true && !isPlainObject(s.lexical)) {
      throw new ValidationError('settings.lexical must be true, false or an object {k1?, b?}');
    }
    const lx = (s.lexical === true ? {} : s.lexical) as Record<string, unknown>;
    checkKeys(lx, ['k1', 'b'], 'settings.lexical.');
    const k1 = lx.k1 === undefined ? DEFAULT_K1 : lx.k1;
    const b = lx.b === undefined ? DEFAULT_B : lx.b;
    if (typeof k1 !== 'number' || !Number.isFinite(k1) || k1 < 0 || k1 > 100) {
      throw new ValidationError(`settings.lexical.k1 must be a number in [0, 100], got ${JSON.stringify(lx.k1)}`);
    }
    if (typeof b !== 'number' || !Number.isFinite(b) || b < 0 || b > 1) {
      throw new ValidationError(`settings.lexical.b must be a number in [0, 1], got ${JSON.stringify(lx.b)}`);
    }
    out.lexical = { k1, b };
  }
  if (s.index_dimensions !== undefined) {
    out.index_dimensions = checkInt(s.index_dimensions, 'settings.index_dimensions', 1, dimensions);
    const storage = s.storage ?? 'float32';
    if (!STORAGE.includes(storage)) {
      throw new ValidationError(`settings.storage must be one of ${STORAGE.join(', ')}, got ${JSON.stringify(s.storage)}`);
    }
    out.storage = storage;
  } else if (s.storage !== undefined) {
    throw new ValidationError('settings.storage applies only with settings.index_dimensions (the full vectors kept beside a prefix graph)');
  }
  return out;
}

/** Dimensions of the HNSW graph: the Matryoshka prefix for funnel collections, else all. */
export function graphDimensions(s: CollectionSettings): number {
  return s.index_dimensions ?? s.dimensions;
}

export function settingsEqual(a: CollectionSettings, b: CollectionSettings): boolean {
  return (
    a.metric === b.metric &&
    a.dimensions === b.dimensions &&
    a.layer === b.layer &&
    a.document_prompt_name === b.document_prompt_name &&
    a.query_prompt_name === b.query_prompt_name &&
    a.model === b.model &&
    a.hnsw.m === b.hnsw.m &&
    a.hnsw.ef_construction === b.hnsw.ef_construction &&
    a.lexical?.k1 === b.lexical?.k1 &&
    a.lexical?.b === b.lexical?.b &&
    a.index_dimensions === b.index_dimensions &&
    a.storage === b.storage
  );
}

/**
 * The largest vector norm the index accepts. hnswlib computes scores in
 * float32: a dot product is bounded by the product of the norms and a squared
 * L2 distance by (|a| + |b|)² ≤ 4·max|v|², so keeping 4·|v|² below the float32
 * maximum means no score can overflow to ±Infinity (which JSON would print as
 * null). √(3.4028234663852886e38 / 4) ≈ 9.2e18.
 */
export const MAX_VECTOR_NORM = Math.sqrt(3.4028234663852886e38 / 4);

/**
 * Copies a vector into float32 (the precision the index keeps), checking
 * length, finiteness and that its norm keeps every score representable; for
 * cosine it is also normalized, because the index compares unit vectors by
 * inner product.
 */
export function toIndexVector(vector: unknown, dimensions: number, metric: Metric, field: string): Float32Array {
  if (!(Array.isArray(vector) || vector instanceof Float32Array)) {
    throw new ValidationError(`${field} must be an array of numbers or a Float32Array`);
  }
  if (vector.length !== dimensions) {
    throw new ValidationError(`${field} has length ${vector.length}, expected ${dimensions}`);
  }
  const out = new Float32Array(dimensions);
  let norm2 = 0;
  for (let i = 0; i < dimensions; i++) {
    const x = vector[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw new ValidationError(`${field}[${i}] must be a finite number, got ${String(x)}`);
    }
    out[i] = x;
    if (!Number.isFinite(out[i]!)) throw new ValidationError(`${field}[${i}] overflows float32`);
    norm2 += out[i]! * out[i]!;
  }
  if (metric !== 'cosine' && !(Math.sqrt(norm2) <= MAX_VECTOR_NORM)) {
    throw new ValidationError(
      `${field} has norm ${Math.sqrt(norm2).toExponential(3)}; above ${MAX_VECTOR_NORM.toExponential(3)} its ${metric} scores cannot be represented in float32`,
    );
  }
  if (metric === 'cosine') {
    if (!(norm2 > 0) || !Number.isFinite(norm2)) {
      throw new ValidationError(`${field} must have a non-zero, finite norm for the cosine metric`);
    }
    const inv = 1 / Math.sqrt(norm2);
    for (let i = 0; i < dimensions; i++) out[i] = out[i]! * inv;
  }
  return out;
}

function checkJsonValue(v: unknown, path: string, depth: number): void {
  if (depth > MAX_METADATA_DEPTH) throw new ValidationError(`${path} nests deeper than ${MAX_METADATA_DEPTH} levels`);
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new ValidationError(`${path} must be a finite number`);
    return;
  }
  if (Array.isArray(v)) {
    v.forEach((el, i) => {
      if (el === undefined) throw new ValidationError(`${path}[${i}] is undefined`);
      checkJsonValue(el, `${path}[${i}]`, depth + 1);
    });
    return;
  }
  if (isPlainObject(v)) {
    // Undefined properties are dropped, as JSON would drop them.
    for (const [k, el] of Object.entries(v)) if (el !== undefined) checkJsonValue(el, `${path}.${k}`, depth + 1);
    return;
  }
  throw new ValidationError(`${path} is not JSON-representable (${typeof v})`);
}

export interface ValidDocument {
  id: string;
  vector: Float32Array;
  text?: string;
  metadata?: Record<string, unknown>;
}

/** Checks a whole upsert batch; throws on the first problem so that nothing of it is written. */
export function validateDocuments(docs: unknown, dimensions: number, metric: Metric): ValidDocument[] {
  if (!Array.isArray(docs)) throw new ValidationError('documents must be an array');
  const seen = new Set<string>();
  return docs.map((raw, i): ValidDocument => {
    const where = `documents[${i}]`;
    if (!isPlainObject(raw)) throw new ValidationError(`${where} must be an object`);
    const d = raw as Partial<DocumentInput> & Record<string, unknown>;
    checkKeys(d, ['id', 'vector', 'text', 'metadata'], `${where}.`);
    if (typeof d.id !== 'string' || d.id.length < 1 || d.id.length > MAX_ID_LENGTH) {
      throw new ValidationError(`${where}.id must be a string of 1-${MAX_ID_LENGTH} characters`);
    }
    if (seen.has(d.id)) throw new ValidationError(`${where}.id ${JSON.stringify(d.id)} appears twice in this batch`);
    seen.add(d.id);
    const out: ValidDocument = { id: d.id, vector: toIndexVector(d.vector, dimensions, metric, `${where}.vector`) };
    if (d.text !== undefined) {
      if (typeof d.text !== 'string') throw new ValidationError(`${where}.text must be a string`);
      out.text = d.text;
    }
    if (d.metadata !== undefined) {
      if (!isPlainObject(d.metadata)) throw new ValidationError(`${where}.metadata must be an object`);
      checkJsonValue(d.metadata, `${where}.metadata`, 0);
      out.metadata = d.metadata;
    }
    return out;
  });
}

export function validateId(id: unknown): string {
  if (typeof id !== 'string' || id.length < 1 || id.length > MAX_ID_LENGTH) {
    throw new ValidationError(`id must be a string of 1-${MAX_ID_LENGTH} characters`);
  }
  return id;
}

export interface ValidSearchOptions {
  k: number;
  offset: number;
  ef: number | undefined;
  include: ReadonlySet<IncludeField>;
  mode: SearchMode;
  text: string | undefined;
  fusion: Required<{ method: 'rrf'; k: number }> | Required<{ method: 'weighted'; alpha: number }>;
  scoreThreshold: number | undefined;
  rescore: number | undefined;
}

const DEFAULT_INCLUDE: ReadonlySet<IncludeField> = new Set(['text', 'metadata']);
export const MAX_OFFSET = 1_000_000;

/** Each fusion method's one parameter: its name, default, and the top of its range (from 0). */
const FUSION_PARAM = {
  rrf: { name: 'k', fallback: DEFAULT_RRF_K, max: 1_000_000 },
  weighted: { name: 'alpha', fallback: DEFAULT_ALPHA, max: 1 },
} as const;

function validateFusion(f: unknown): ValidSearchOptions['fusion'] {
  if (f === undefined) return { method: 'rrf', k: DEFAULT_RRF_K };
  if (!isPlainObject(f)) throw new ValidationError('fusion must be {"method": "rrf", "k"?} or {"method": "weighted", "alpha"?}');
  const o = f as Record<string, unknown>;
  const method = o.method;
  if (method !== 'rrf' && method !== 'weighted') {
    throw new ValidationError(`fusion.method must be "rrf" or "weighted", got ${JSON.stringify(method)}`);
  }
  const { name, fallback, max } = FUSION_PARAM[method];
  checkKeys(o, ['method', name], 'fusion.');
  const value = o[name] ?? fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > max) {
    throw new ValidationError(`fusion.${name} must be a number in [0, ${max}], got ${JSON.stringify(o[name])}`);
  }
  return { method, [name]: value } as ValidSearchOptions['fusion'];
}

/** Collection-independent checks; the collection then checks what its settings allow (lexical, rescore). */
export function validateSearchOptions(opts: unknown): ValidSearchOptions {
  if (!isPlainObject(opts)) throw new ValidationError('search options must be an object');
  const o = opts as Partial<SearchOptions> & Record<string, unknown>;
  checkKeys(o, ['k', 'ef', 'filter', 'include', 'offset', 'mode', 'text', 'fusion', 'score_threshold', 'rescore'], 'search.');
  const k = checkInt(o.k, 'k', 1, 1_000_000);
  const offset = o.offset === undefined ? 0 : checkInt(o.offset, 'offset', 0, MAX_OFFSET);
  const ef = o.ef === undefined ? undefined : checkInt(o.ef, 'ef', 1, 1_000_000);
  let include = DEFAULT_INCLUDE;
  if (o.include !== undefined) {
    if (!Array.isArray(o.include)) throw new ValidationError(`include must be an array of ${INCLUDE_FIELDS.join(', ')}`);
    for (const f of o.include) {
      if (!INCLUDE_FIELDS.includes(f)) {
        throw new ValidationError(`include entries must be one of ${INCLUDE_FIELDS.join(', ')}, got ${JSON.stringify(f)}`);
      }
    }
    include = new Set(o.include);
  }
  const mode = o.mode ?? 'dense';
  if (!MODES.includes(mode)) throw new ValidationError(`mode must be one of ${MODES.join(', ')}, got ${JSON.stringify(o.mode)}`);
  if (o.text !== undefined && (typeof o.text !== 'string' || o.text.length === 0)) {
    throw new ValidationError('text must be a non-empty string');
  }
  if (mode !== 'dense' && o.text === undefined) throw new ValidationError(`mode "${mode}" needs the query text`);
  if (o.fusion !== undefined && mode !== 'hybrid') throw new ValidationError('fusion applies to mode "hybrid" only');
  const fusion = validateFusion(o.fusion);
  let scoreThreshold: number | undefined;
  if (o.score_threshold !== undefined) {
    if (typeof o.score_threshold !== 'number' || !Number.isFinite(o.score_threshold)) {
      throw new ValidationError(`score_threshold must be a finite number, got ${JSON.stringify(o.score_threshold)}`);
    }
    scoreThreshold = o.score_threshold;
  }
  const rescore = o.rescore === undefined ? undefined : checkInt(o.rescore, 'rescore', 1, 100_000);
  if (rescore !== undefined && mode === 'lexical')
    throw new ValidationError('rescore applies to the dense side (modes "dense" and "hybrid")');
  return { k, offset, ef, include, mode, text: o.text, fusion, scoreThreshold, rescore };
}

/** Makes stored metadata immutable so handing it out without copying cannot corrupt the store. */
export function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const el of Object.values(v)) deepFreeze(el);
  }
  return v;
}
