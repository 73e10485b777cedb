/**
 * Public types of the vector store. Kept free of runtime code so the HTTP
 * layer can import them without pulling in hnswlib.
 */

export type Metric = 'cosine' | 'ip' | 'l2';

/** Settings as stored: every default filled in. Fixed for the life of a collection. */
export interface CollectionSettings {
  metric: Metric;
  dimensions: number;
  /** Transformer layer to embed with (2D Matryoshka); opaque to the store. */
  layer?: number;
  document_prompt_name?: string;
  query_prompt_name?: string;
  hnsw: { m: number; ef_construction: number };
  /** BM25 index over the documents' text; absent when the collection has none. */
  lexical?: LexicalSettings;
  /**
   * Matryoshka funnel: the HNSW graph holds the first `index_dimensions` of
   * each vector (renormalized for cosine) and the full vectors are kept in
   * `storage` for rescoring. Absent: the graph holds the full vectors (as before).
   */
  index_dimensions?: number;
  /** Precision of the full vectors kept for rescoring; present exactly when `index_dimensions` is. */
  storage?: StoragePrecision;
  /** The served model that embeds this collection's texts; opaque to the store. Absent in collections made before models were named: the default model. */
  model?: string;
}

export interface LexicalSettings {
  /** Term-frequency saturation. Default 0.9 (Anserini's MS MARCO setting). */
  k1: number;
  /** Length normalization, 0 (none) … 1 (full). Default 0.4. */
  b: number;
}

export type StoragePrecision = 'float32' | 'float16' | 'int8';

/** Settings as accepted by `create`: defaults are metric "cosine", m 16, ef_construction 200. */
export interface CollectionSettingsInput {
  metric?: Metric;
  dimensions: number;
  layer?: number;
  document_prompt_name?: string;
  query_prompt_name?: string;
  hnsw?: { m?: number; ef_construction?: number };
  /** true: BM25 with k1 0.9, b 0.4; an object overrides either. false/absent: no lexical index. */
  lexical?: boolean | { k1?: number; b?: number };
  /** 1 … dimensions. */
  index_dimensions?: number;
  /** Default "float32"; only with index_dimensions. */
  storage?: StoragePrecision;
  model?: string;
}

export interface CollectionInfo {
  name: string;
  settings: CollectionSettings;
  /** Live documents (deleted and replaced ones are not counted). */
  count: number;
}

export interface DocumentInput {
  /** 1–256 UTF-16 code units. */
  id: string;
  vector: number[] | Float32Array;
  text?: string;
  /** JSON-representable object: nested objects, arrays, strings, finite numbers, booleans, null. */
  metadata?: Record<string, unknown>;
}

/**
 * A stored document. `vector` holds float32 precision values; for the cosine
 * metric it is the unit-normalized vector (that is what the index stores).
 * `metadata` is deeply frozen: it is the store's own copy, shared, not cloned.
 */
export interface StoredDocument {
  id: string;
  vector: number[];
  text?: string;
  metadata?: Record<string, unknown>;
}

export interface UpsertResult {
  /** Ids that did not exist before this call. */
  inserted: number;
  /** Ids that existed and were replaced (vector, text and metadata all replaced). */
  replaced: number;
}

export type MatchValue = string | number | boolean;

export type Condition =
  | { key: string; match: { value: MatchValue } }
  | { key: string; range: { gt?: number; gte?: number; lt?: number; lte?: number } };

/** Qdrant-style metadata filter. `key` may be a dotted path into nested metadata ("a.b"). */
export interface Filter {
  must?: Condition[];
  must_not?: Condition[];
}

export type IncludeField = 'text' | 'metadata' | 'vector';

export type SearchMode = 'dense' | 'lexical' | 'hybrid';

/**
 * How hybrid search merges the dense and the lexical result lists:
 * - rrf: score = Σ over the lists a hit appears in of 1 / (k + rank), rank from 1 (default k 60);
 * - weighted: each list's scores min-max normalized to [0, 1] over the candidates it returned,
 *   score = alpha · dense + (1 − alpha) · lexical (a list a hit is missing from counts 0; default alpha 0.5).
 */
export type Fusion = { method: 'rrf'; k?: number } | { method: 'weighted'; alpha?: number };

export interface SearchOptions {
  /** Number of results wanted; more than the live document count is fine (you get them all). */
  k: number;
  /** Results to skip before the k returned (pagination). Default 0. */
  offset?: number;
  /** Default "dense". "lexical" and "hybrid" need a collection with a lexical index and `text`. */
  mode?: SearchMode;
  /** The query text, for the lexical side (modes "lexical" and "hybrid"). */
  text?: string;
  /** Hybrid only. Default { method: "rrf", k: 60 }. */
  fusion?: Fusion;
  /** Only hits whose (final) score is ≥ this are returned. */
  score_threshold?: number;
  /**
   * Funnel collections only: how many graph candidates are rescored with the
   * full vectors. Default max(10 × (offset + k), 100).
   */
  rescore?: number;
  /**
   * HNSW search breadth for this query. Default max(k, DEFAULT_EF) (DEFAULT_EF = 128).
   * Higher is slower and more accurate. Whatever it is, a search returns
   * min(k, matching live documents) results: the filter is applied during
   * the graph walk, and a walk that comes back short ends in an exact scan.
   */
  ef?: number;
  filter?: Filter;
  /** Fields to return besides id and score. Default ["text", "metadata"]. */
  include?: IncludeField[];
}

export interface SearchHit {
  id: string;
  /**
   * Higher is better for every metric: cosine similarity, dot product (ip),
   * or negative Euclidean distance (l2).
   */
  score: number;
  /** Hybrid/lexical: the dense similarity of a hit that the dense side returned. */
  dense_score?: number;
  /** Hybrid/lexical: the BM25 score of a hit that the lexical side returned. */
  lexical_score?: number;
  text?: string;
  metadata?: Record<string, unknown>;
  vector?: number[];
}

/** The subset of pino's interface the store uses; a pino logger fits as-is. */
export type LogFn = (obj: Record<string, unknown>, msg?: string) => void;
export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

/** When a collection writes a snapshot and starts a new log segment (whichever comes first). */
export interface SnapshotPolicy {
  /** After this many log records (one record per upsert/delete call). Default 10 000. */
  records?: number;
  /** After this many log bytes. Default 64 MiB. Bounds recovery time and log disk use. */
  bytes?: number;
  /** After this many seconds with unsnapshotted writes. Default 300. 0 disables the timer. */
  seconds?: number;
}

export type SnapshotPhase =
  | 'begin' // temp dir created, nothing written yet
  | 'index-written' // index + docs in the temp dir, not yet synced
  | 'rotated' // new log segment created; writers may proceed
  | 'synced' // temp files and manifest fsynced, not yet renamed into place
  | 'renamed' // snapshot is durable; old segments/snapshots not yet deleted
  | 'done';

/** Fault-injection points for crash tests; production code leaves these unset. */
export interface StoreHooks {
  snapshotPhase?: (phase: SnapshotPhase, collection: string) => void;
}

export interface StoreOptions {
  logger?: Logger;
  snapshotEvery?: SnapshotPolicy;
  /**
   * A snapshot rebuilds the HNSW graph without deleted elements when the
   * deleted ones outnumber the live ones and are at least this many.
   * Default 10 000. Rebuilding costs as much as inserting every live vector.
   */
  compactMinDeleted?: number;
  hooks?: StoreHooks;
}
