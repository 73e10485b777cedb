/**
 * The contract between the HTTP routes and the storage of collections.
 *
 * The routes embed texts and validate HTTP-level input; everything about
 * keeping documents and finding them again sits behind `StoreBackend`. The
 * WAL-backed local store (`CollectionStore`, store.ts) is one implementation;
 * another (e.g. PostgreSQL) implements the same interface and reuses the
 * backend-neutral parts:
 *
 *   validate.ts   normalizeSettings / settingsEqual (what a collection is, defaults filled),
 *                 validateDocuments, validateSearchOptions (every 422 decided in one place)
 *   lexical.ts    LexicalIndex: BM25 over document text, tokenize()
 *   storage.ts    VectorStorage + quantize/dequantize: full vectors at float32/float16/int8
 *   funnel.ts     prefix (Matryoshka truncation + renormalization) and rescoring
 *   fusion.ts     fuse(): RRF and weighted (min-max) fusion of dense and lexical lists
 *   search.ts     runSearch(): modes, fusion, score_threshold, offset over any backend's retrievers
 *   filter.ts     compileFilter(): Qdrant-style metadata filters as a predicate
 *
 * Rules every implementation keeps (the HTTP contract depends on them):
 * - Errors are the classes of errors.ts: ValidationError (422, nothing written),
 *   NotFoundError (404, unknown collection), ConflictError (409), StorageError (5xx).
 * - `upsert` is all or nothing and resolves only once the write is durable and
 *   visible to `get`/`search` of the same backend instance; the dense index and
 *   the lexical index both hold an acknowledged write, or neither does.
 * - Stored settings are `normalizeSettings` output; re-creating with equal
 *   settings answers `created: false`, with other settings a ConflictError.
 * - Scores are higher-is-better; hits come best first.
 *
 * Methods may answer synchronously (the local store does for reads); callers
 * always `await` them.
 */

import type { RecoveryReport } from './collection.js';
import type { CollectionInfo, CollectionSettings, DocumentInput, SearchHit, SearchOptions, StoredDocument, UpsertResult } from './types.js';

export type Awaitable<T> = T | Promise<T>;

export interface CreateResult {
  created: boolean;
  settings: CollectionSettings;
}

/**
 * Filled in by a write on a replicated backend (PostgreSQL) with the change
 * sequence number it committed at; the HTTP layer answers it as `x-store-seq`.
 * A single-process backend leaves it empty.
 */
export interface WriteReceipt {
  seq?: number;
}

export interface StoreBackend {
  /** Creates a collection from `CollectionSettingsInput`-shaped settings (validated here). */
  create(name: unknown, settings: unknown, receipt?: WriteReceipt): Promise<CreateResult>;
  /** All collections, sorted by name. */
  list(): Awaitable<CollectionInfo[]>;
  /** NotFoundError when absent. */
  info(name: unknown): Awaitable<CollectionInfo>;
  /** Removes a collection and everything in it. */
  drop(name: unknown, receipt?: WriteReceipt): Promise<void>;
  /** All or nothing; resolves once durable. Documents carry full-width vectors (the backend quantizes/prefixes as its settings say). */
  upsert(name: unknown, documents: DocumentInput[] | unknown, receipt?: WriteReceipt): Promise<UpsertResult>;
  /** The document, vector at full width (dequantized for compact storage), or undefined. */
  get(name: unknown, id: unknown): Awaitable<StoredDocument | undefined>;
  /** Resolves whether the document existed; durable before it resolves. */
  delete(name: unknown, id: unknown, receipt?: WriteReceipt): Promise<boolean>;
  /**
   * `vector` (full width) serves the dense side and may be undefined in
   * lexical mode; `options.text` serves the lexical side.
   */
  search(name: unknown, vector: unknown, options: SearchOptions): Awaitable<SearchHit[]>;
  /** Operator report for /info: collections that could not be opened (they answer 503), and why. */
  unavailableCollections(): { name: string; reason: string }[];
  /** Operator report for /info: what recovery found at open, per collection that had anything to recover. */
  recoveries(): { name: string; recovery: RecoveryReport }[];
  /** Finishes pending writes and releases resources. */
  close(options?: { snapshot?: boolean }): Promise<void>;
}
