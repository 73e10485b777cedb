/** Request-size limits on texts, which JSON schema cannot express with configured values. */
import type { ServerLimits } from './app.js';
import { ApiError } from './errors/catalogue.js';

export function checkTexts(texts: readonly string[], limits: ServerLimits, field: string): void {
  if (texts.length === 0) throw new ApiError('INPUTS_EMPTY', field);
  if (texts.length > limits.maxInputs) throw new ApiError('TOO_MANY_INPUTS', field, texts.length, limits.maxInputs);
  texts.forEach((t, i) => {
    if (t.length === 0) throw new ApiError('EMPTY_INPUT', field, i);
    if (t.length > limits.maxInputChars) throw new ApiError('INPUT_TOO_MANY_CHARS', field, i, t.length, limits.maxInputChars);
  });
}
