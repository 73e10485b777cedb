/**
 * Failures the runtime reports to its callers, in runtime terms: each has a stable code that says
 * what went wrong. The runtime knows nothing of HTTP; the server maps each code to a status in one
 * table (src/server/errors/catalogue.ts).
 */
export const RUNTIME_ERRORS = {
  /** `dimensions` is outside 1..hidden size. */
  DIMENSIONS_OUT_OF_RANGE: 'the requested dimensions are outside the model size',
  /** `dimensions` is not one of the model's declared Matryoshka sizes. */
  DIMENSIONS_NOT_ALLOWED: 'the model does not serve these dimensions',
  /** `layer` is outside 1..number of layers. */
  LAYER_OUT_OF_RANGE: 'the requested layer is outside the model',
  /** `layer` is not one of the model's declared exit layers. */
  LAYER_NOT_ALLOWED: 'the model does not serve this layer',
  /** The graph could not be split by layer, so only the last layer is served. */
  LAYER_EXIT_UNAVAILABLE: 'the model cannot exit early',
  /** The named prompt is not among the model's prompts. */
  UNKNOWN_PROMPT: 'the model has no prompt of this name',
  /** Both a named prompt and a free instruction were given. */
  PROMPT_AND_INSTRUCTION: 'a prompt name and an instruction were both given',
  /** Token Prepending was asked of a model that does not declare it. */
  TOKEN_PREPENDING_UNSUPPORTED: 'the model does not support Token Prepending',
  /** Token Prepending needs the per-layer graph, which could not be built. */
  TOKEN_PREPENDING_UNAVAILABLE: 'Token Prepending needs the per-layer graph',
  /** A token id to decode is outside the model's vocabulary. */
  UNKNOWN_TOKEN_ID: 'a token id is outside the vocabulary',
  /** The model does the other task (embedding with a reranker, reranking with an embedder). */
  WRONG_TASK: 'the model does not do this task',
  /**
   * An input has nothing the model can read: empty, only whitespace, control or invisible format
   * characters or unpaired surrogates, or only characters the tokenizer drops. Its vector would
   * carry nothing of the text (all zeros under mean pooling, which breaks cosine downstream).
   */
  EMPTY_INPUT: 'an input has no text the model can read',
  /** An input has more tokens than the model accepts and truncation was refused. */
  INPUT_TOO_LONG: 'an input is longer than the model accepts',
  /** The queue holds as much waiting work as it may. */
  QUEUE_FULL: 'the queue is full',
  /** The request's deadline passed before its work started. */
  DEADLINE_EXCEEDED: 'the deadline passed before the work started',
  /** At the measured throughput the request cannot finish by its deadline even alone. */
  DEADLINE_TOO_SHORT: 'the request cannot finish by its deadline',
  /** At the measured throughput the work queued ahead would make the request miss its deadline. */
  DEADLINE_BEHIND_QUEUE: 'the queued work would make the request miss its deadline',
  /** The caller went away; nobody is waiting for the answer. */
  CANCELLED: 'the caller went away',
  /** The engine is closing and takes no more work. */
  SHUTTING_DOWN: 'the engine is shutting down',
  /** A worker failed while running a batch (it is being replaced). */
  WORKER_FAILED: 'an inference worker failed',
  /** ONNX Runtime refused a batch. */
  INFERENCE_FAILED: 'inference failed',
} as const;

export type RuntimeErrorCode = keyof typeof RUNTIME_ERRORS;

export interface RuntimeErrorDetails {
  /** QUEUE_FULL, DEADLINE_BEHIND_QUEUE: how long the waiting work should take to drain at the recent throughput. */
  drainMs?: number;
  /** EMPTY_INPUT: which inputs, in order (a rerank query is `'query'`). */
  emptyInputs?: Array<number | 'query'>;
  /** EMPTY_INPUT: the request field at fault, once the caller has named it. */
  field?: string;
}

/** The one wording of EMPTY_INPUT: `name` is the input at fault, `others` how many more are like it. */
export function emptyInputMessage(name: string, others: number): string {
  return (
    `${name} has no text the model can read (it is empty, or only whitespace, control or invisible characters such as ` +
    `U+200B, or unpaired surrogates, which the tokenizer drops)${others > 0 ? `, and so have ${others} more` : ''}: ` +
    'its embedding would carry nothing of it'
  );
}

export class RuntimeError extends Error {
  constructor(
    readonly code: RuntimeErrorCode,
    message: string = RUNTIME_ERRORS[code],
    readonly details: RuntimeErrorDetails = {},
  ) {
    super(message);
    this.name = 'RuntimeError';
  }
}
