/** The one knob check (src/runtime/knobs.ts): each rule by its stable code, on a real model description. */
import { describe, expect, it } from 'vitest';
import { checkKnobs, type StagesInfo } from '../src/runtime/knobs.js';
import { loadModelDir } from '../src/runtime/model-dir.js';
import { TINY_BERT } from './helpers.js';

const tiny = loadModelDir(TINY_BERT); // 64 dimensions, 4 layers, prompts query/passage, no Token Prepending
const split: StagesInfo = { ok: true, count: 6 };
const unsplit: StagesInfo = { ok: false, reason: 'split failed' };

const codeOf = (f: () => void): string | undefined => {
  try {
    f();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
};

describe('checkKnobs', () => {
  it('accepts what the model serves', () => {
    expect(codeOf(() => checkKnobs(tiny, split, { dimensions: 64, layer: 2, promptName: 'query' }))).toBeUndefined();
    expect(codeOf(() => checkKnobs(tiny, unsplit, { layer: 4 }))).toBeUndefined();
  });

  it.each([
    [{ dimensions: 0 }, split, 'DIMENSIONS_OUT_OF_RANGE'],
    [{ dimensions: 65 }, split, 'DIMENSIONS_OUT_OF_RANGE'],
    [{ dimensions: 2.5 }, split, 'DIMENSIONS_OUT_OF_RANGE'],
    [{ layer: 5 }, split, 'LAYER_OUT_OF_RANGE'],
    [{ layer: 2 }, unsplit, 'LAYER_EXIT_UNAVAILABLE'],
    [{ promptName: 'toString' }, split, 'UNKNOWN_PROMPT'],
    [{ promptName: 'query', instruction: 'x' }, split, 'PROMPT_AND_INSTRUCTION'],
    [{ tokenPrepending: true }, split, 'TOKEN_PREPENDING_UNSUPPORTED'],
  ] as const)('%j (stages %j) → %s', (opts, stages, code) => {
    expect(codeOf(() => checkKnobs(tiny, stages, opts))).toBe(code);
  });

  it('holds a model to its declared Matryoshka sizes and exit layers', () => {
    const declared = { ...tiny, matryoshkaDimensions: [16, 32, 64], exitLayers: [2, 4] };
    expect(codeOf(() => checkKnobs(declared, split, { dimensions: 48 }))).toBe('DIMENSIONS_NOT_ALLOWED');
    expect(codeOf(() => checkKnobs(declared, split, { dimensions: 32, layer: 2 }))).toBeUndefined();
    expect(codeOf(() => checkKnobs(declared, split, { layer: 3 }))).toBe('LAYER_NOT_ALLOWED');
  });
});
