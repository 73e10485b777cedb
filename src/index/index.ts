/**
 * Durable vector collections: the storage engine behind the search API.
 * Vectors in, vectors out; embedding happens in the HTTP layer.
 */
export { CollectionStore, silentLogger } from "./store.js";
export { ConflictError, IndexError, NotFoundError, StorageError, UnavailableError, ValidationError } from "./errors.js";
export type { IndexErrorCode } from "./errors.js";
export { scoreCandidates, exactScore } from "./score.js";
export type { ScoredCandidate } from "./score.js";
export { DEFAULT_EF } from "./vector-index.js";
export { compileFilter } from "./filter.js";
export type * from "./types.js";
