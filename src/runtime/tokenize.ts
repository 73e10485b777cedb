/**
 * Tokenization: text (with its prompt or instruction) → token ids, with the model's maximum length
 * enforced. Uses Hugging Face's `tokenizers` binding, whose encode runs off the JavaScript thread.
 *
 * Padding and truncation baked into tokenizer.json are ignored: batches are padded later to their
 * own longest input, and truncation is set here from the model's resolved maximum length.
 */
import { Tokenizer } from 'tokenizers';
import { RuntimeError } from './errors.js';
import type { ModelSpec } from './model-dir.js';

export type TruncationDirection = 'left' | 'right';

/** How one request wants its texts turned into tokens. */
export interface TokenizeOptions {
  /** Prefix prepended to every text (a named prompt), or null. */
  prefix: string | null;
  /** Free-form instruction formatted with the model's template, or null. */
  instruction: string | null;
  truncate: boolean;
  direction: TruncationDirection;
  /** Insert the Token Prepending placeholder as the first token. */
  tokenPrepending: boolean;
}

/** One tokenized input, ready for batching. */
export interface TokenizedInput {
  ids: Int32Array;
  /**
   * Leading tokens that belong to the prompt/instruction (and the special tokens before it), to be
   * excluded from pooling when the model says `include_prompt: false`; 0 otherwise.
   */
  promptTokens: number;
  /** Text pairs: where the second text's tokens (token type 1) start. */
  segment?: number;
}

/** One token as TEI's `/tokenize` reports it. */
export interface TokenDetail {
  id: number;
  /** The token's text: the covered part of the input, or the token itself for a special token. */
  text: string;
  special: boolean;
  /** Character (code point) offsets into the text the model sees; null for special tokens. */
  start: number | null;
  stop: number | null;
}
/** Pair truncation strategies of HF `tokenizers` (a const enum there, so spelled out here). */
type PairStrategy = 'OnlySecond' | 'LongestFirst';

/**
 * The one tokenizer loader: a tokenizer.json without padding, truncating to `maxLength` on one side
 * (`null`: never truncating, so every token of a text is seen).
 */
export function loadTokenizer(path: string, truncation: { maxLength: number; direction: TruncationDirection } | null): Tokenizer {
  let tok: Tokenizer;
  try {
    tok = Tokenizer.fromFile(path);
  } catch (err) {
    throw new Error(`${path} could not be loaded: ${(err as Error).message}`);
  }
  tok.disablePadding();
  if (truncation) tok.setTruncation(truncation.maxLength, { direction: truncation.direction });
  else tok.disableTruncation();
  return tok;
}

/** Any letter or digit: every tokenizer keeps it (as itself, its pieces, bytes, or the unknown token). */
const SURELY_READABLE = /[\p{L}\p{N}]/u;
/** Nothing to read for any model: only whitespace, control or format characters (U+200B, U+FEFF), unpaired surrogates. */
const BLANK = /^[\p{White_Space}\p{Cc}\p{Cf}\p{Cs}]*$/u;

export class TextTokenizer {
  /** One instance per truncation side: truncation is tokenizer state, and encodes run concurrently. */
  private readonly bySide: Record<TruncationDirection, Tokenizer>;
  private readonly promptLengths = new Map<string, number>();
  private readonly placeholderId: number | null;
  /** For /tokenize and /decode: no truncation, so every token of the text is shown. Made on first use. */
  private whole: Tokenizer | null = null;
  /** Pair encoders, made on first use (only rerankers encode pairs). */
  private pairTokenizers: Record<PairStrategy, Tokenizer> | null = null;

  constructor(private readonly spec: ModelSpec) {
    const make = (direction: TruncationDirection): Tokenizer => loadTokenizer(spec.tokenizerPath, { maxLength: this.budget(), direction });
    this.bySide = { right: make('right'), left: make('left') };
    if (spec.tokenPrepending) {
      const id = this.bySide.right.tokenToId(spec.tokenPrepending.placeholder);
      if (id === null || id === undefined) {
        throw new Error(`${spec.tokenizerPath}: token_prepending placeholder ${spec.tokenPrepending.placeholder} is not in the vocabulary`);
      }
      this.placeholderId = id;
    } else {
      this.placeholderId = null;
    }
  }

  /** Tokens available to the tokenizer: one is reserved for the placeholder when the model can prepend. */
  private budget(): number {
    return this.spec.tokenPrepending ? this.spec.maxLength - 1 : this.spec.maxLength;
  }

  /** The instruction template; a model without one gets the instruction as a plain prefix. */
  private get template(): string {
    return this.spec.instructionTemplate ?? '{instruction}{text}';
  }

  /** The exact text the model sees for `text` under these options. */
  formatText(text: string, opts: Pick<TokenizeOptions, 'prefix' | 'instruction'>): string {
    if (opts.instruction !== null) {
      // A function replacer, so `$&`-style patterns in user text are taken literally.
      return this.template.replace('{instruction}', () => opts.instruction!).replace('{text}', () => text);
    }
    return opts.prefix !== null ? opts.prefix + text : text;
  }

  /** The part of the formatted text that comes before the user's text. */
  private leadingText(opts: Pick<TokenizeOptions, 'prefix' | 'instruction'>): string {
    if (opts.instruction !== null) {
      const at = this.template.indexOf('{text}');
      return (at >= 0 ? this.template.slice(0, at) : this.template).replace('{instruction}', () => opts.instruction!);
    }
    return opts.prefix ?? '';
  }

  /**
   * Tokens the prompt occupies at the start of a sequence (leading special tokens included), as
   * sentence-transformers counts them: tokenize the prompt alone and drop its trailing specials.
   */
  private async promptLength(leading: string): Promise<number> {
    if (leading === '') return 0;
    const cached = this.promptLengths.get(leading);
    if (cached !== undefined) return cached;
    const enc = await this.bySide.right.encode(leading);
    const special = enc.getSpecialTokensMask();
    let n = special.length;
    while (n > 0 && special[n - 1] === 1) n--;
    if (this.promptLengths.size < 1024) this.promptLengths.set(leading, n);
    return n;
  }

  private get untruncated(): Tokenizer {
    this.whole ??= loadTokenizer(this.spec.tokenizerPath, null);
    return this.whole;
  }

  /** Every token of each (formatted) text with its offsets, untruncated, as TEI's `/tokenize` shows them. */
  async details(texts: readonly string[], opts: { prefix: string | null; addSpecialTokens: boolean }): Promise<TokenDetail[][]> {
    const formatted = texts.map((t) => this.formatText(t, { prefix: opts.prefix, instruction: null }));
    const encodings = await this.untruncated.encodeBatch(formatted, { addSpecialTokens: opts.addSpecialTokens });
    return encodings.map((enc, i) => {
      // Offsets count code points; index the text the same way.
      const chars = Array.from(formatted[i]!);
      const ids = enc.getIds();
      const tokens = enc.getTokens();
      const offsets = enc.getOffsets();
      const special = enc.getSpecialTokensMask();
      return ids.map((id, t) => {
        if (special[t] === 1) return { id, text: tokens[t]!, special: true, start: null, stop: null };
        const [start, stop] = offsets[t] as [number, number];
        return { id, text: chars.slice(start, stop).join(''), special: false, start, stop };
      });
    });
  }

  /**
   * Indices of the texts with nothing the model can read: blank for any model (BLANK), or left with
   * no token of their own by this tokenizer (the text alone: no prompt, no special tokens, not
   * truncated). Only texts without a letter or digit need the tokenizer, so this costs next to
   * nothing for ordinary text.
   */
  async unreadable(texts: readonly string[]): Promise<number[]> {
    const blank: number[] = [];
    const unsure: number[] = [];
    texts.forEach((t, i) => {
      if (SURELY_READABLE.test(t)) return;
      (BLANK.test(t) ? blank : unsure).push(i);
    });
    if (unsure.length > 0) {
      const encodings = await this.untruncated.encodeBatch(
        unsure.map((i) => texts[i]!),
        { addSpecialTokens: false },
      );
      encodings.forEach((enc, n) => {
        if (enc.getIds().length === 0) blank.push(unsure[n]!);
      });
    }
    return blank.sort((a, b) => a - b);
  }

  /** Token ids back to text; an id outside the vocabulary is a validation error. */
  async decode(sequences: readonly (readonly number[])[], skipSpecialTokens: boolean): Promise<string[]> {
    const vocab = this.untruncated.getVocabSize(true);
    sequences.forEach((ids, s) =>
      ids.forEach((id, i) => {
        if (!Number.isInteger(id) || id < 0 || id >= vocab) {
          throw new RuntimeError(
            'UNKNOWN_TOKEN_ID',
            `ids${sequences.length > 1 ? `[${s}]` : ''}[${i}] = ${id} is not a token id of this model (0..${vocab - 1})`,
          );
        }
      }),
    );
    return this.untruncated.decodeBatch(
      sequences.map((ids) => [...ids]),
      skipSpecialTokens,
    );
  }

  async tokenize(texts: readonly string[], opts: TokenizeOptions): Promise<TokenizedInput[]> {
    if (opts.tokenPrepending && this.placeholderId === null) {
      throw new RuntimeError(
        'TOKEN_PREPENDING_UNSUPPORTED',
        'token_prepending is not supported by this model (no token_prepending in embedder.json)',
      );
    }
    const formatted = texts.map((t) => this.formatText(t, opts));
    const encodings = await this.bySide[opts.direction].encodeBatch(formatted);
    const leading = this.spec.includePrompt ? 0 : await this.promptLength(this.leadingText(opts));
    return encodings.map((enc, i) => {
      if (!opts.truncate && enc.getOverflowing().length > 0) {
        throw new RuntimeError(
          'INPUT_TOO_LONG',
          `input ${i} is longer than the model's maximum of ${this.spec.maxLength} tokens and truncate is false`,
        );
      }
      const raw = enc.getIds();
      const shift = opts.tokenPrepending ? 1 : 0;
      const ids = new Int32Array(raw.length + shift);
      if (opts.tokenPrepending) ids[0] = this.placeholderId!;
      ids.set(raw, shift);
      return { ids, promptTokens: leading === 0 ? 0 : Math.min(leading + shift, ids.length) };
    });
  }

  /**
   * Text pairs for a cross-encoder, through the tokenizer's own pair encoding (for BERT:
   * `[CLS] query [SEP] document [SEP]`, token types 0 then 1). Over the maximum length the document
   * is cut first; only a query that alone leaves no room is cut too (longest first).
   */
  async tokenizePairs(query: string, documents: readonly string[], opts: { truncate: boolean }): Promise<TokenizedInput[]> {
    this.pairTokenizers ??= {
      OnlySecond: this.pairTokenizer('OnlySecond'),
      LongestFirst: this.pairTokenizer('LongestFirst'),
    };
    const pairs = this.pairTokenizers;
    const encodings = await Promise.all(
      documents.map((doc) => pairs.OnlySecond.encode(query, doc).catch(() => pairs.LongestFirst.encode(query, doc))),
    );
    return encodings.map((enc, i) => {
      if (!opts.truncate && enc.getOverflowing().length > 0) {
        throw new RuntimeError(
          'INPUT_TOO_LONG',
          `pair ${i} (query and text) is longer than the model's maximum of ${this.spec.maxLength} tokens and truncate is false`,
        );
      }
      const ids = Int32Array.from(enc.getIds());
      const second = enc.getTypeIds().indexOf(1);
      return { ids, promptTokens: 0, segment: second < 0 ? ids.length : second };
    });
  }

  private pairTokenizer(strategy: PairStrategy): Tokenizer {
    const tok = loadTokenizer(this.spec.tokenizerPath, null);
    tok.setTruncation(this.spec.maxLength, { strategy: strategy as never });
    return tok;
  }
}
