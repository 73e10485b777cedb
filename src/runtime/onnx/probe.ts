/**
 * A fixed probe set for quality checks (fp32 vs int8 agreement at quantization time or at load),
 * and a helper that tokenizes it into right-padded feeds.
 */
import ort from 'onnxruntime-node';
import { Tokenizer } from 'tokenizers';

export const PROBE_SENTENCES: readonly string[] = [
  'The quick brown fox jumps over the lazy dog.',
  'What is the capital of France?',
  'Embeddings map pieces of text to vectors of numbers.',
  'A man is playing a guitar on stage.',
  'The stock market fell sharply on Monday after the announcement.',
  'How do I reset my password?',
  'Photosynthesis converts light energy into chemical energy.',
  'She sells sea shells by the sea shore.',
  'The committee will meet again next week to discuss the budget.',
  'Rain is expected throughout the weekend in the northern regions.',
  'Can you recommend a good book about medieval history?',
  'The new phone has a larger screen and a faster processor.',
  'Water boils at one hundred degrees Celsius at sea level.',
  'He forgot his umbrella and got soaked on the way home.',
  'Machine learning models need large amounts of training data.',
  'The museum is closed on public holidays.',
];

export interface TokenizeOptions {
  /** Truncate to this many tokens (default 128). */
  maxLength?: number;
  /** Pad every row to exactly this length (default: the longest row). */
  padTo?: number;
  /** Which inputs the model takes (adds token_type_ids / position_ids when listed). */
  inputNames?: readonly string[];
}

/** Token ids for each text, truncated on the right, no padding. */
export async function tokenize(tokenizerPath: string, texts: readonly string[], maxLength = 128): Promise<number[][]> {
  const tok = Tokenizer.fromFile(tokenizerPath);
  tok.disablePadding();
  tok.setTruncation(maxLength, { direction: 'right' });
  const encodings = await Promise.all(texts.map((t) => tok.encode(t)));
  return encodings.map((e) => Array.from(e.getIds()));
}

/** Right-padded int64 feeds (input_ids, attention_mask, and token_type_ids/position_ids if asked). */
export function padFeeds(ids: number[][], options: TokenizeOptions = {}): Record<string, ort.Tensor> {
  const B = ids.length;
  const S = options.padTo ?? Math.max(...ids.map((r) => r.length));
  const inputIds = new BigInt64Array(B * S);
  const mask = new BigInt64Array(B * S);
  const positions = new BigInt64Array(B * S);
  ids.forEach((row, b) => {
    row.slice(0, S).forEach((id, t) => {
      inputIds[b * S + t] = BigInt(id);
      mask[b * S + t] = 1n;
      positions[b * S + t] = BigInt(t);
    });
  });
  const dims = [B, S];
  const names = options.inputNames ?? ['input_ids', 'attention_mask', 'token_type_ids'];
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', inputIds, dims),
    attention_mask: new ort.Tensor('int64', mask, dims),
  };
  if (names.includes('token_type_ids')) feeds.token_type_ids = new ort.Tensor('int64', new BigInt64Array(B * S), dims);
  if (names.includes('position_ids')) feeds.position_ids = new ort.Tensor('int64', positions, dims);
  return feeds;
}
