import { IndexError, UnreachableError } from '../index/errors.js';

/** PostgreSQL cannot be reached (down, restarting, network), or this replica has not loaded yet. */
export class StoreUnavailableError extends UnreachableError {}

/** SQLSTATE classes that mean "the server or the connection went away", not "your statement is wrong". */
const CONNECTION_CLASSES = ['08', '57', '53'];

/** Whether `err` (from `pg`) is about reaching PostgreSQL rather than about the statement. */
export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error) || err instanceof IndexError) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (/^[0-9A-Z]{5}$/.test(code)) return CONNECTION_CLASSES.includes(code.slice(0, 2));
    if (/^E[A-Z]+$/.test(code)) return true; // a Node system error: ECONNREFUSED, ECONNRESET, ETIMEDOUT, ENOTFOUND …
  }
  // pg's own: "Connection terminated unexpectedly", "Client has encountered a connection error …", timeouts.
  return /connection|terminated|timeout|not queryable|ended/i.test(err.message);
}

/** Rethrows connection failures as StoreUnavailableError, anything else as is. */
export function asStoreError(err: unknown): unknown {
  if (err instanceof IndexError) return err;
  if (isConnectionError(err)) {
    return new StoreUnavailableError(`PostgreSQL is unreachable: ${(err as Error).message}`, { cause: err });
  }
  return err;
}
