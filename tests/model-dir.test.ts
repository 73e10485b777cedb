import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModelDir, ModelDirError } from '../src/runtime/model-dir.js';
import { DEFAULT_MODEL, hasShared, modelVariant, SHARED_ASSETS, SHARED_SKIP_REASON, TINY_BERT, TINY_DECODER } from './helpers.js';

describe('model directory loader', () => {
  it('reads the sentence-transformers layout with onnx/model.onnx', () => {
    const spec = loadModelDir(TINY_BERT);
    expect(spec.onnxPath).toBe(join(TINY_BERT, 'onnx/model.onnx'));
    expect(spec).toMatchObject({
      hiddenSize: 64,
      numLayers: 4,
      pooling: 'mean',
      paddingSide: 'right',
      maxLength: 48,
      includePrompt: true,
      normalizeModule: true,
    });
    expect(spec.prompts).toEqual({ query: 'query: ', passage: 'passage: ' });
  });

  it('reads model.onnx at the top level and embedder.json extras', () => {
    const spec = loadModelDir(DEFAULT_MODEL);
    expect(spec.onnxPath).toBe(join(DEFAULT_MODEL, 'model.onnx'));
    expect(spec.matryoshkaDimensions).toEqual([32, 64, 128, 256]);
    expect(spec.exitLayers).toEqual([1, 2, 3, 4]);
  });

  it('takes padding side, last-token pooling and token prepending from a decoder directory', () => {
    const spec = loadModelDir(TINY_DECODER);
    expect(spec).toMatchObject({ paddingSide: 'left', pooling: 'last', finalNormOnExit: true });
    expect(spec.tokenPrepending).toEqual({ placeholder: '<|pst|>', firstLayer: 1, lastLayer: 3 });
  });

  it('chooses max length by precedence and caps it at the position embeddings', () => {
    expect(loadModelDir(modelVariant(TINY_BERT, { 'embedder.json': '{"max_length": 20}' })).maxLength).toBe(20);
    // sentence_bert_config (48) wins over tokenizer_config (64)
    expect(loadModelDir(TINY_BERT).maxLength).toBe(48);
    const noSbert = modelVariant(TINY_BERT, { 'sentence_bert_config.json': '{}', 'tokenizer_config.json': '{"model_max_length": 1e30}' });
    expect(loadModelDir(noSbert).maxLength).toBe(64);
  });

  it('pooling precedence: embedder.json, then 1_Pooling, else mean', () => {
    expect(loadModelDir(modelVariant(TINY_BERT, { 'embedder.json': '{"pooling": "cls"}' })).pooling).toBe('cls');
    expect(loadModelDir(modelVariant(TINY_BERT, { '1_Pooling/config.json': '{"pooling_mode_max_tokens": true}' })).pooling).toBe('max');
    expect(
      loadModelDir(modelVariant(TINY_BERT, { '1_Pooling/config.json': '{"pooling_mode_mean_tokens": true, "include_prompt": false}' }))
        .includePrompt,
    ).toBe(false);
  });

  it.skipIf(!hasShared)("caps bge-small's absurd model_max_length at the positions", () => {
    // The shared folder has no weights: point it at a fixture graph so the directory is complete.
    const spec = loadModelDir(join(SHARED_ASSETS, 'bge-small-en-v1.5'), { onnxFile: join(TINY_BERT, 'onnx/model.onnx') });
    expect(spec.maxLength).toBe(512);
  });
  if (!hasShared) it.skip(SHARED_SKIP_REASON, () => {});

  const broken: Array<[string, Record<string, string | null>, RegExp]> = [
    ['a missing tokenizer.json', { 'tokenizer.json': '' }, /tokenizer/],
    ['invalid JSON in config.json', { 'config.json': '{nope' }, /config\.json is not valid JSON/],
    [
      'config.json without hidden_size',
      { 'config.json': '{"num_hidden_layers": 2, "max_position_embeddings": 64}' },
      /config\.json: no hidden_size/,
    ],
    ['a bad pooling in embedder.json', { 'embedder.json': '{"pooling": "median"}' }, /embedder\.json: pooling/],
    ['matryoshka dimensions above the hidden size', { 'embedder.json': '{"matryoshka_dimensions": [32, 999]}' }, /matryoshka_dimensions/],
    [
      'a default prompt that does not exist',
      { 'config_sentence_transformers.json': '{"prompts": {}, "default_prompt_name": "q"}' },
      /default_prompt_name/,
    ],
  ];
  for (const [what, files, message] of broken) {
    it(`fails on ${what}, naming the file`, () => {
      const dir = modelVariant(TINY_BERT, files);
      if (files['tokenizer.json'] === '') rmSync(join(dir, 'tokenizer.json'));
      expect(() => loadModelDir(dir)).toThrow(ModelDirError);
      expect(() => loadModelDir(dir)).toThrow(message);
    });
  }

  it('fails on a directory without a graph or without config.json', () => {
    const empty = mkdtempSync(join(tmpdir(), 'empty-model-'));
    expect(() => loadModelDir(empty)).toThrow(/has no model\.onnx/);
    const noConfig = modelVariant(TINY_BERT, {});
    rmSync(join(noConfig, 'config.json'));
    expect(() => loadModelDir(noConfig)).toThrow(/has no config\.json/);
    expect(() => loadModelDir('/nonexistent/model')).toThrow(/does not exist/);
  });

  it('selects the quantized variant by configuration', () => {
    expect(() => loadModelDir(TINY_BERT, { variant: 'quantized' })).toThrow(/model_quantized\.onnx/);
  });
});
