/**
 * The one check of a request's knobs against a model: pure (the model's description and whether
 * its per-layer graph exists), so every route and the collection settings use the same rules.
 * JSON schemas check the knobs' types and bounds; this checks what depends on the model.
 */
import type { EmbedOptions } from './embedder.js';
import { RuntimeError } from './errors.js';
import type { ModelSpec } from './model-dir.js';

export type StagesInfo = { ok: true; count: number } | { ok: false; reason: string };

export function checkKnobs(s: ModelSpec, stages: StagesInfo, opts: Pick<EmbedOptions, 'dimensions' | 'layer' | 'promptName' | 'instruction' | 'tokenPrepending'>): void {
  if (opts.dimensions !== undefined) {
    const d = opts.dimensions;
    if (!Number.isInteger(d) || d < 1 || d > s.hiddenSize) {
      throw new RuntimeError('DIMENSIONS_OUT_OF_RANGE', `dimensions must be an integer in 1..${s.hiddenSize}`);
    }
    if (s.matryoshkaDimensions && !s.matryoshkaDimensions.includes(d)) {
      throw new RuntimeError('DIMENSIONS_NOT_ALLOWED', `dimensions must be one of ${s.matryoshkaDimensions.join(', ')} for this model`);
    }
  }
  if (opts.layer !== undefined) {
    const l = opts.layer;
    if (!Number.isInteger(l) || l < 1 || l > s.numLayers) {
      throw new RuntimeError('LAYER_OUT_OF_RANGE', `layer must be an integer in 1..${s.numLayers}`);
    }
    if (s.exitLayers && !s.exitLayers.includes(l)) {
      throw new RuntimeError('LAYER_NOT_ALLOWED', `layer must be one of ${s.exitLayers.join(', ')} for this model`);
    }
    if (l !== s.numLayers && !stages.ok) {
      throw new RuntimeError('LAYER_EXIT_UNAVAILABLE', `layer ${l}: this model's graph cannot exit early (${stages.reason}); only layer ${s.numLayers} is served`);
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
    throw new RuntimeError('TOKEN_PREPENDING_UNSUPPORTED', 'token_prepending is not supported by this model (it has no token_prepending entry in embedder.json)');
  }
  if (opts.tokenPrepending && !stages.ok) {
    throw new RuntimeError('TOKEN_PREPENDING_UNAVAILABLE', `token_prepending needs the model split by layer, which failed: ${stages.reason}`);
  }
}
