/**
 * Typed errors of the vector store.
 *
 * The HTTP layer maps them by class (or by `code`) to status codes:
 * NotFoundError → 404, ConflictError → 409, ValidationError → 422,
 * StorageError → 500/503. Anything else escaping the store is a bug.
 */

export type IndexErrorCode = 'NOT_FOUND' | 'CONFLICT' | 'VALIDATION' | 'STORAGE' | 'UNAVAILABLE' | 'UNREACHABLE';

export abstract class IndexError extends Error {
  abstract readonly code: IndexErrorCode;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The base class of the store's errors with one code: each error below is its code and its doc. */
function withCode<C extends IndexErrorCode>(code: C) {
  return class extends IndexError {
    readonly code = code;
  };
}

/** The named collection does not exist. */
export class NotFoundError extends withCode('NOT_FOUND') {}

/** The request contradicts existing state (e.g. re-creating a collection with other settings). */
export class ConflictError extends withCode('CONFLICT') {}

/** The request is malformed; the message says which field and why. Nothing was written. */
export class ValidationError extends withCode('VALIDATION') {}

/**
 * The disk or the on-disk state failed us (fsync error, corrupt snapshot,
 * store closed). Writes to a collection whose log can no longer be trusted
 * keep failing with this until the process restarts and recovers from disk.
 */
export class StorageError extends withCode('STORAGE') {}

/**
 * The collection exists on disk but could not be opened (damaged files the
 * log cannot rebuild); the message carries the reason. Other collections serve.
 */
export class UnavailableError extends withCode('UNAVAILABLE') {}

/**
 * A shared store (PostgreSQL) cannot be reached, or this replica has not
 * loaded from it yet: the write was not made; retrying shortly is right.
 * Reads keep being served from memory meanwhile.
 */
export class UnreachableError extends withCode('UNREACHABLE') {}
