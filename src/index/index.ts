/**
 * Durable vector collections: the storage engine behind the search API.
 * Vectors in, vectors out; embedding happens in the HTTP layer.
 */
export { CollectionStore, silentLogger } from "./store.js";
export type { StoreBackend, CreateResult, Awaitable, WriteReceipt } from "./backend.js";
export { LexicalIndex, tokenize, DEFAULT_B, DEFAULT_K1 } from "./lexical.js";
export type { LexicalHit } from "./lexical.js";
export { fuse, DEFAULT_ALPHA, DEFAULT_RRF_K } from "./fusion.js";
export type { Fused, Ranked } from "./fusion.js";
export { VectorStorage, prefixVector, storableError, toFloat16, fromFloat16 } from "./storage.js";
export { searchDepths, finishSearch, defaultRescore, HYBRID_DEPTH } from "./search.js";
export { normalizeSettings, settingsEqual, validateDocuments, validateSearchOptions, graphDimensions } from "./validate.js";
export type { ValidSearchOptions, ValidDocument } from "./validate.js";
export { ConflictError, IndexError, NotFoundError, StorageError, UnavailableError, ValidationError } from "./errors.js";
export type { IndexErrorCode } from "./errors.js";
export { scoreCandidates, exactScore } from "./score.js";
export type { ScoredCandidate } from "./score.js";
export { DEFAULT_EF } from "./vector-index.js";
export { compileFilter } from "./filter.js";
export type * from "./types.js";
