/**
 * The one feed builder: token-id rows padded into the tensors an ONNX encoder takes (input_ids,
 * attention_mask, and token_type_ids / position_ids when the graph has them), each typed as the
 * graph declares it (int64 usually, int32 for some exports). The worker, the int8 probe, the tests
 * and the benchmarks' raw ORT limit all build their feeds here. (The GPU device check's raw phases
 * build their own, so that they run without the service's compiled code: benchmarks/gpu/check.mjs.)
 */
import ort from 'onnxruntime-node';

export interface GraphInputs {
  /** Every input the graph takes. */
  names: ReadonlySet<string>;
  /** Integer inputs typed int32 instead of the usual int64. */
  int32: ReadonlySet<string>;
}

/** What a session says about its inputs. */
export function graphInputs(session: Pick<ort.InferenceSession, 'inputNames' | 'inputMetadata'>): GraphInputs {
  const int32 = new Set<string>();
  for (const meta of session.inputMetadata ?? []) if (meta.isTensor && meta.type === 'int32') int32.add(meta.name);
  return { names: new Set(session.inputNames), int32 };
}

export interface PaddedFeeds {
  feeds: Record<string, ort.Tensor>;
  seqLen: number;
  /** Where each row's real tokens start (non-zero only with left padding). */
  starts: number[];
}

export interface PadOptions {
  /** Which side gets the padding (decoders pad left). Default right. */
  side?: 'left' | 'right';
  /** Pad (or cut) every row to exactly this length; default the longest row. */
  padTo?: number;
  /** Text pairs: where each row's second segment (token type 1) starts; default none (all type 0). */
  segments?: ArrayLike<number>;
}

/** Pads the rows to one length and builds the graph's feeds. Positions count real tokens only, so left padding does not shift them. */
export function padFeeds(rows: readonly ArrayLike<number>[], inputs: GraphInputs, options: PadOptions = {}): PaddedFeeds {
  const batch = rows.length;
  let seqLen = options.padTo ?? 0;
  if (options.padTo === undefined) for (const r of rows) seqLen = Math.max(seqLen, r.length);
  const n = batch * seqLen;
  const ids = new Int32Array(n);
  const mask = new Int32Array(n);
  const positions = inputs.names.has('position_ids') ? new Int32Array(n) : null;
  const types = new Int32Array(inputs.names.has('token_type_ids') ? n : 0);
  const starts: number[] = [];
  for (let b = 0; b < batch; b++) {
    const row = rows[b]!;
    const len = Math.min(row.length, seqLen);
    const start = options.side === 'left' ? seqLen - len : 0;
    starts.push(start);
    const at = b * seqLen + start;
    for (let t = 0; t < len; t++) {
      ids[at + t] = row[t]!;
      mask[at + t] = 1;
      if (positions) positions[at + t] = t;
    }
    if (types.length && options.segments) for (let t = options.segments[b]!; t < len; t++) types[at + t] = 1;
  }
  const dims = [batch, seqLen];
  const tensor = (name: string, values: Int32Array): ort.Tensor =>
    inputs.int32.has(name) ? new ort.Tensor('int32', values, dims) : new ort.Tensor('int64', BigInt64Array.from(values, BigInt), dims);
  const feeds: Record<string, ort.Tensor> = { input_ids: tensor('input_ids', ids), attention_mask: tensor('attention_mask', mask) };
  if (inputs.names.has('token_type_ids')) feeds.token_type_ids = tensor('token_type_ids', types);
  if (positions) feeds.position_ids = tensor('position_ids', positions);
  return { feeds, seqLen, starts };
}
