/**
 * The one check of a request's knobs against a model: pure (the model's description and whether
 * its per-layer graph exists), so every route and the collection settings use the same rules.
 * JSON schemas check the knobs' types and bounds; this checks what depends on the model.
 */
import type { EmbedOptions } from './embedder.js';
import { RuntimeError, type RuntimeErrorCode } from './errors.js';
import type { ModelSpec } from './model-dir.js';

export type StagesInfo = { ok: true; count: number } | { ok: false; reason: string };

export function checkKnobs(
  s: ModelSpec,
  stages: StagesInfo,
  opts: Pick<EmbedOptions, 'dimensions' | 'layer' | 'promptName' | 'instruction' | 'tokenPrepending'>,
): void {
  if (opts.dimensions !== undefined) {
    checkChoice('dimensions', opts.dimensions, s.hiddenSize, s.matryoshkaDimensions, 'DIMENSIONS_OUT_OF_RANGE', 'DIMENSIONS_NOT_ALLOWED');
  }
  if (opts.layer !== undefined) {
    const l = opts.layer;
    checkChoice('layer', l, s.numLayers, s.exitLayers, 'LAYER_OUT_OF_RANGE', 'LAYER_NOT_ALLOWED');
    if (l !== s.numLayers && !stages.ok) {
      throw new RuntimeError(
        'LAYER_EXIT_UNAVAILABLE',
        `layer ${l}: this model's graph cannot exit early (${stages.reason}); only layer ${s.numLayers} is served`,
      );
    }
  }
  if (opts.promptName !== undefined && !Object.hasOwn(s.prompts, opts.promptName)) {
    const known = Object.keys(s.prompts);
    throw new RuntimeError(
      'UNKNOWN_PROMPT',
      `unknown prompt_name ${JSON.stringify(opts.promptName)}; ${known.length ? `this model has ${known.join(', ')}` : 'this model defines no prompts'}`,
    );
  }
  if (opts.promptName !== undefined && opts.instruction !== undefined) {
    throw new RuntimeError('PROMPT_AND_INSTRUCTION', 'give prompt_name or instruction, not both');
  }
  if (opts.tokenPrepending && !s.tokenPrepending) {
    throw new RuntimeError(
      'TOKEN_PREPENDING_UNSUPPORTED',
      'token_prepending is not supported by this model (it has no token_prepending entry in embedder.json)',
    );
  }
  if (opts.tokenPrepending && !stages.ok) {
    throw new RuntimeError(
      'TOKEN_PREPENDING_UNAVAILABLE',
      `token_prepending needs the model split by layer, which failed: ${stages.reason}`,
    );
  }
}

/** An integer in 1..max, and one of `allowed` when the model lists them. */
function checkChoice(
  name: string,
  value: number,
  max: number,
  allowed: readonly number[] | null | undefined,
  outOfRange: RuntimeErrorCode,
  notAllowed: RuntimeErrorCode,
): void {
  if (!Number.isInteger(value) || value < 1 || value > max) throw new RuntimeError(outOfRange, `${name} must be an integer in 1..${max}`);
  if (allowed && !allowed.includes(value))
    throw new RuntimeError(notAllowed, `${name} must be one of ${allowed.join(', ')} for this model`);
}
