import { ValidationError } from "./errors.js";
import type {
  CollectionSettings,
  CollectionSettingsInput,
  DocumentInput,
  IncludeField,
  Metric,
  SearchOptions,
} from "./types.js";

/**
 * Input checks shared by the store and the collections. Everything a caller
 * hands in is checked here before anything is logged, so a ValidationError
 * always means "nothing was written".
 */

export const NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const MAX_ID_LENGTH = 256;
export const MAX_DIMENSIONS = 65_536;
const MAX_METADATA_DEPTH = 64;
const METRICS: readonly Metric[] = ["cosine", "ip", "l2"];
const INCLUDE_FIELDS: readonly IncludeField[] = ["text", "metadata", "vector"];

export const DEFAULT_M = 16;
export const DEFAULT_EF_CONSTRUCTION = 200;

/**
 * Collection names become directory names, so the pattern (no dots, no
 * slashes) is what keeps `../x` and friends out of the data dir.
 */
export function validateName(name: unknown): string {
  if (typeof name !== "string" || !NAME_PATTERN.test(name)) {
    throw new ValidationError(
      `collection name must be 1-64 characters of [A-Za-z0-9_-], got ${JSON.stringify(name)}`,
    );
  }
  return name;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function checkInt(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
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
  if (!isPlainObject(input)) throw new ValidationError("settings must be an object");
  const s = input as Partial<CollectionSettingsInput> & Record<string, unknown>;
  checkKeys(s, ["metric", "dimensions", "layer", "document_prompt_name", "query_prompt_name", "hnsw"], "settings.");
  const metric = s.metric ?? "cosine";
  if (!METRICS.includes(metric)) {
    throw new ValidationError(`settings.metric must be one of ${METRICS.join(", ")}, got ${JSON.stringify(s.metric)}`);
  }
  const dimensions = checkInt(s.dimensions, "settings.dimensions", 1, MAX_DIMENSIONS);
  const hnswIn = s.hnsw ?? {};
  if (!isPlainObject(hnswIn)) throw new ValidationError("settings.hnsw must be an object");
  checkKeys(hnswIn, ["m", "ef_construction"], "settings.hnsw.");
  const m = hnswIn.m === undefined ? DEFAULT_M : checkInt(hnswIn.m, "settings.hnsw.m", 2, 256);
  const efc =
    hnswIn.ef_construction === undefined
      ? DEFAULT_EF_CONSTRUCTION
      : checkInt(hnswIn.ef_construction, "settings.hnsw.ef_construction", 1, 100_000);

  // Optional fields are only present when given, so persisted settings compare equal by value.
  const out: CollectionSettings = { metric, dimensions, hnsw: { m, ef_construction: efc } };
  if (s.layer !== undefined) {
    if (typeof s.layer !== "number" || !Number.isInteger(s.layer)) {
      throw new ValidationError(`settings.layer must be an integer, got ${JSON.stringify(s.layer)}`);
    }
    out.layer = s.layer;
  }
  for (const key of ["document_prompt_name", "query_prompt_name"] as const) {
    const v = s[key];
    if (v === undefined) continue;
    if (typeof v !== "string" || v.length === 0 || v.length > 256) {
      throw new ValidationError(`settings.${key} must be a non-empty string of at most 256 characters`);
    }
    out[key] = v;
  }
  return out;
}

export function settingsEqual(a: CollectionSettings, b: CollectionSettings): boolean {
  return (
    a.metric === b.metric &&
    a.dimensions === b.dimensions &&
    a.layer === b.layer &&
    a.document_prompt_name === b.document_prompt_name &&
    a.query_prompt_name === b.query_prompt_name &&
    a.hnsw.m === b.hnsw.m &&
    a.hnsw.ef_construction === b.hnsw.ef_construction
  );
}

/**
 * Copies a vector into float32 (the precision the index keeps), checking
 * length and finiteness; for cosine it is also normalized, because the index
 * compares unit vectors by inner product.
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
    if (typeof x !== "number" || !Number.isFinite(x)) {
      throw new ValidationError(`${field}[${i}] must be a finite number, got ${String(x)}`);
    }
    out[i] = x;
    if (!Number.isFinite(out[i]!)) throw new ValidationError(`${field}[${i}] overflows float32`);
    norm2 += out[i]! * out[i]!;
  }
  if (metric === "cosine") {
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
  if (v === null || typeof v === "string" || typeof v === "boolean") return;
  if (typeof v === "number") {
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
  if (!Array.isArray(docs)) throw new ValidationError("documents must be an array");
  const seen = new Set<string>();
  return docs.map((raw, i): ValidDocument => {
    const where = `documents[${i}]`;
    if (!isPlainObject(raw)) throw new ValidationError(`${where} must be an object`);
    const d = raw as Partial<DocumentInput> & Record<string, unknown>;
    checkKeys(d, ["id", "vector", "text", "metadata"], `${where}.`);
    if (typeof d.id !== "string" || d.id.length < 1 || d.id.length > MAX_ID_LENGTH) {
      throw new ValidationError(`${where}.id must be a string of 1-${MAX_ID_LENGTH} characters`);
    }
    if (seen.has(d.id)) throw new ValidationError(`${where}.id ${JSON.stringify(d.id)} appears twice in this batch`);
    seen.add(d.id);
    const out: ValidDocument = { id: d.id, vector: toIndexVector(d.vector, dimensions, metric, `${where}.vector`) };
    if (d.text !== undefined) {
      if (typeof d.text !== "string") throw new ValidationError(`${where}.text must be a string`);
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
  if (typeof id !== "string" || id.length < 1 || id.length > MAX_ID_LENGTH) {
    throw new ValidationError(`id must be a string of 1-${MAX_ID_LENGTH} characters`);
  }
  return id;
}

export interface ValidSearchOptions {
  k: number;
  ef: number | undefined;
  include: ReadonlySet<IncludeField>;
}

const DEFAULT_INCLUDE: ReadonlySet<IncludeField> = new Set(["text", "metadata"]);

export function validateSearchOptions(opts: unknown): ValidSearchOptions {
  if (!isPlainObject(opts)) throw new ValidationError("search options must be an object");
  const o = opts as Partial<SearchOptions> & Record<string, unknown>;
  checkKeys(o, ["k", "ef", "filter", "include"], "search.");
  const k = checkInt(o.k, "k", 1, 1_000_000);
  const ef = o.ef === undefined ? undefined : checkInt(o.ef, "ef", 1, 1_000_000);
  let include = DEFAULT_INCLUDE;
  if (o.include !== undefined) {
    if (!Array.isArray(o.include)) throw new ValidationError(`include must be an array of ${INCLUDE_FIELDS.join(", ")}`);
    for (const f of o.include) {
      if (!INCLUDE_FIELDS.includes(f)) {
        throw new ValidationError(`include entries must be one of ${INCLUDE_FIELDS.join(", ")}, got ${JSON.stringify(f)}`);
      }
    }
    include = new Set(o.include);
  }
  return { k, ef, include };
}

/** Makes stored metadata immutable so handing it out without copying cannot corrupt the store. */
export function deepFreeze<T>(v: T): T {
  if (typeof v === "object" && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const el of Object.values(v)) deepFreeze(el);
  }
  return v;
}
