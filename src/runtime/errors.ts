/**
 * Failures the runtime reports to its callers. The kinds mirror what a client can act on; the
 * server maps each kind to a status code, the runtime itself knows nothing of HTTP.
 */
export type RuntimeErrorKind =
  /** The request asks for something this model cannot do (bad layer, dimensions, prompt...). */
  | 'validation'
  /** An input is longer than the model accepts and truncation was refused. */
  | 'payload_too_large'
  /** The queue is full; retry later. */
  | 'overloaded'
  /** The request's deadline passed before its work started. */
  | 'timeout'
  /** The engine cannot serve right now (not ready, a worker died, shutting down). */
  | 'unavailable'
  /** The caller went away; nobody is waiting for the answer. */
  | 'cancelled';

export class RuntimeError extends Error {
  constructor(
    readonly kind: RuntimeErrorKind,
    message: string,
    /** Seconds after which a retry is sensible (overloaded / unavailable). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'RuntimeError';
  }
}
