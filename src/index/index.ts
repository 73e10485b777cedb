/**
 * Durable vector collections: the storage engine behind the search API.
 * Vectors in, vectors out; embedding happens in the HTTP layer.
 */

export type { Awaitable, CreateResult, StoreBackend, WriteReceipt } from './backend.js';
export type { IndexErrorCode } from './errors.js';
export { ConflictError, IndexError, NotFoundError, StorageError, UnavailableError, ValidationError } from './errors.js';
export { compileFilter } from './filter.js';
export type { Fused, Ranked } from './fusion.js';
export { DEFAULT_ALPHA, DEFAULT_RRF_K, fuse } from './fusion.js';
export type { LexicalHit } from './lexical.js';
export { DEFAULT_B, DEFAULT_K1, LexicalIndex, tokenize } from './lexical.js';
export type { ScoredCandidate } from './score.js';
export { exactScore, scoreCandidates } from './score.js';
export { defaultRescore, finishSearch, HYBRID_DEPTH, searchDepths } from './search.js';
export { fromFloat16, prefixVector, storableError, toFloat16, VectorStorage } from './storage.js';
export { CollectionStore, silentLogger } from './store.js';
export type * from './types.js';
export type { ValidDocument, ValidSearchOptions } from './validate.js';
export { graphDimensions, normalizeSettings, settingsEqual, validateDocuments, validateSearchOptions } from './validate.js';
export { DEFAULT_EF } from './vector-index.js';
