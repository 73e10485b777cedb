/**
 * Checks on request texts the JSON schema cannot express (configured limits), and how a route names
 * its inputs in errors: the runtime numbers inputs, the client knows them by its own field names.
 */
import { emptyInputMessage, RuntimeError } from '../runtime/errors.js';
import type { ServerLimits } from './app.js';
import { ApiError } from './errors/catalogue.js';

export function checkTexts(texts: readonly string[], limits: ServerLimits, field: string): void {
  if (texts.length === 0) throw new ApiError('INPUTS_EMPTY', field);
  if (texts.length > limits.maxInputs) throw new ApiError('TOO_MANY_INPUTS', field, texts.length, limits.maxInputs);
  texts.forEach((t, i) => {
    if (t.length > limits.maxInputChars) throw new ApiError('INPUT_TOO_MANY_CHARS', field, i, t.length, limits.maxInputChars);
  });
}

/** The request's name of input `i` of an embed or rerank call: `inputs[3]`, `documents[3].text`, `query`. */
export type InputNames = (i: number) => string;

/** Names for a field that holds a string or a list of them: `input` for a lone string, else `input[i]`. */
export function listNames(field: string, value: string | readonly unknown[]): InputNames {
  return typeof value === 'string' ? () => field : (i) => `${field}[${i}]`;
}

/**
 * A runtime EMPTY_INPUT reworded with the request's own field names (`field` also becomes OpenAI's
 * `param`); every other error passes unchanged.
 */
export function nameInputs(err: unknown, names: InputNames, queryName = 'query'): unknown {
  if (!(err instanceof RuntimeError) || err.code !== 'EMPTY_INPUT' || !err.details.emptyInputs?.length) return err;
  const [first, ...rest] = err.details.emptyInputs;
  const name = first === 'query' ? queryName : names(first!);
  return new RuntimeError('EMPTY_INPUT', emptyInputMessage(name, rest.length), { ...err.details, field: name });
}
