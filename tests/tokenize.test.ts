import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RuntimeError } from '../src/runtime/errors.js';
import { loadModelDir } from '../src/runtime/model-dir.js';
import { TextTokenizer } from '../src/runtime/tokenize.js';
import { type BertReference, hasShared, modelVariant, readReference, SHARED_ASSETS, SHARED_SKIP_REASON, TINY_BERT } from './helpers.js';

const plain = { prefix: null, instruction: null, truncate: true, direction: 'right' as const, tokenPrepending: false };

describe('tokenization', () => {
  it('matches the ids of the reference tokenizer written independently in Python', async () => {
    const ref = readReference<BertReference>(TINY_BERT);
    const tok = new TextTokenizer(loadModelDir(TINY_BERT));
    const out = await tok.tokenize(ref.sentences, plain);
    expect(out.map((t) => Array.from(t.ids))).toEqual(ref.token_ids);
  });

  it('truncates to the model maximum keeping the special tokens, or refuses with truncate: false', async () => {
    const ref = readReference<BertReference>(TINY_BERT);
    const tok = new TextTokenizer(loadModelDir(TINY_BERT));
    const [right] = await tok.tokenize([ref.long_sentence.sentence], plain);
    expect(Array.from(right!.ids)).toEqual(ref.long_sentence.token_ids);
    const [left] = await tok.tokenize([ref.long_sentence.sentence], { ...plain, direction: 'left' });
    expect(left!.ids.length).toBe(48);
    expect(left!.ids[0]).toBe(ref.long_sentence.token_ids[0]); // [CLS] kept
    expect(left!.ids[47]).toBe(ref.long_sentence.token_ids[47]); // [SEP] kept
    expect(Array.from(left!.ids)).not.toEqual(ref.long_sentence.token_ids);
    await expect(tok.tokenize([ref.long_sentence.sentence], { ...plain, truncate: false })).rejects.toThrow(RuntimeError);
    await expect(tok.tokenize([ref.long_sentence.sentence], { ...plain, truncate: false })).rejects.toMatchObject({
      code: 'INPUT_TOO_LONG',
    });
  });

  it('counts prompt tokens for include_prompt: false the way sentence-transformers does', async () => {
    const dir = modelVariant(TINY_BERT, { '1_Pooling/config.json': '{"pooling_mode_mean_tokens": true, "include_prompt": false}' });
    const tok = new TextTokenizer(loadModelDir(dir));
    const [withPrompt] = await tok.tokenize(['the cat'], { ...plain, prefix: 'query: ' });
    // sentence-transformers counts the prompt tokenized alone minus its trailing [SEP]: for "query: "
    // in tiny-bert's vocab.txt, [CLS] query : (ids 2, 644, 56; lines 3, 645, 57), counted by hand.
    expect(withPrompt!.promptTokens).toBe(3);
    expect(Array.from(withPrompt!.ids.slice(0, 4))).toEqual([2, 644, 56, 141]); // then "the" (line 142)
  });

  it('formats instructions with the model template, literally', () => {
    const tok = new TextTokenizer(loadModelDir(TINY_BERT));
    expect(tok.formatText('what is $& ?', { prefix: null, instruction: 'Find $1 docs' })).toBe(
      'Instruct: Find $1 docs\nQuery: what is $& ?',
    );
    expect(tok.formatText('x', { prefix: 'query: ', instruction: null })).toBe('query: x');
  });

  describe.skipIf(!hasShared)('the real all-MiniLM-L6-v2 tokenizer.json', () => {
    const dir = join(SHARED_ASSETS, 'all-MiniLM-L6-v2');
    it('gives bert-base-uncased ids and ignores the baked-in padding to 128', async () => {
      const spec = { ...loadModelDir(dir, { onnxFile: join(TINY_BERT, 'onnx/model.onnx') }) };
      expect(spec.maxLength).toBe(256);
      const tok = new TextTokenizer(spec);
      const out = await tok.tokenize(['hello world', 'The quick brown fox jumps over the lazy dog.', 'HELLO, World!'], plain);
      expect(Array.from(out[0]!.ids)).toEqual([101, 7592, 2088, 102]);
      expect(Array.from(out[1]!.ids)).toEqual([101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012, 102]);
      expect(Array.from(out[2]!.ids)).toEqual([101, 7592, 1010, 2088, 999, 102]);
    });
  });
  if (!hasShared) it.skip(SHARED_SKIP_REASON, () => {});
});
