import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { ensureStages, loadForSplit } from '../../src/runtime/onnx/cache.js';
import {
  DataLocation,
  decodeModel,
  encodeModel,
  floatValues,
  forEachTensor,
  loadModel,
  type ModelProto,
  saveModel,
} from '../../src/runtime/onnx/model.js';
import { StagedRunner } from '../../src/runtime/onnx/staged.js';
import { Reader, Writer } from '../../src/runtime/onnx/wire.js';
import {
  type BertReference,
  DEFAULT_MODEL,
  type DecoderReference,
  hasMinilm,
  MINILM,
  makeBatch,
  maxAbsDiff,
  readReference,
  SESSION_OPTIONS,
  TINY_BERT,
  TINY_BERT_DIR,
  TINY_DECODER,
  TINY_DECODER_DIR,
  tempDir,
} from './helpers.js';

const bertIds = readReference<BertReference>(TINY_BERT_DIR).token_ids;
const decoderIds = readReference<DecoderReference>(TINY_DECODER_DIR).token_ids;

async function outputs(model: string | Uint8Array, side: 'left' | 'right', ids: number[][]): Promise<Float32Array> {
  const s =
    typeof model === 'string'
      ? await ort.InferenceSession.create(model, SESSION_OPTIONS)
      : await ort.InferenceSession.create(model, SESSION_OPTIONS);
  try {
    const batch = makeBatch(ids, side, s.inputNames);
    return (await s.run(batch.feeds)).last_hidden_state!.data as Float32Array;
  } finally {
    await s.release();
  }
}

describe('wire format', () => {
  it('round-trips int64 edge values, negative int32 and floats', () => {
    const values = [
      0,
      1,
      127,
      128,
      300,
      2 ** 31,
      2 ** 49 - 1,
      2 ** 49,
      Number.MAX_SAFE_INTEGER,
      -1,
      -(2 ** 31),
      9223372036854775807n,
      -9223372036854775808n,
    ];
    const w = new Writer();
    for (const v of values) w.int64Field(1, v);
    w.int32Field(2, -5).floatField(3, 1.5).stringField(4, 'héllo');
    const r = new Reader(w.finish());
    const got: unknown[] = [];
    while (!r.done) {
      const tag = r.uint32();
      const field = tag >>> 3;
      if (field === 1) got.push(r.int64());
      else if (field === 2) got.push(r.int32());
      else if (field === 3) got.push(r.float());
      else if (field === 4) got.push(r.string());
      else r.skip(tag & 7);
    }
    expect(got).toEqual([...values, -5, 1.5, 'héllo']);
  });

  it('reads packed and unpacked repeated fields alike', () => {
    const unpacked = new Writer();
    for (const d of [2, 3]) unpacked.int64Field(1, d);
    unpacked.int32Field(2, 1);
    const packed = new Writer();
    packed.packed(1, (p) => p.int64(2).int64(3));
    packed.int32Field(2, 1);
    // A TensorProto with dims [2, 3] and data_type FLOAT, inside a minimal ModelProto.graph.initializer.
    const wrap = (tensor: Writer): Uint8Array => {
      const m = new Writer();
      m.message(7, (g) => g.message(5, (t) => t.raw(tensor.finish())));
      return m.finish();
    };
    expect(decodeModel(wrap(unpacked)).graph.initializer[0]!.dims).toEqual([2, 3]);
    expect(decodeModel(wrap(packed)).graph.initializer[0]!.dims).toEqual([2, 3]);
  });
});

describe('ONNX codec', () => {
  it.each([
    ['tiny-bert', TINY_BERT, 'right', bertIds],
    ['tiny-decoder', TINY_DECODER, 'left', decoderIds],
    ['models/default', DEFAULT_MODEL, 'right', bertIds],
  ] as const)('%s: decode → encode is byte-identical and runs identically in ORT', async (_name, file, side, ids) => {
    const bytes = fs.readFileSync(file);
    const model = decodeModel(bytes);
    expect(model.graph.node.length).toBeGreaterThan(100);
    const again = encodeModel(model);
    expect(Buffer.compare(again, bytes)).toBe(0);
    // Touch something so the model really is re-serialized from the object tree, then run it.
    model.metadataProps.push({ key: 'round-trip', value: 'yes' });
    const changed = encodeModel(model);
    expect(changed.length).toBeGreaterThan(bytes.length);
    expect(decodeModel(changed).metadataProps.at(-1)).toEqual({ key: 'round-trip', value: 'yes' });
    const [a, b] = [await outputs(file, side, ids as number[][]), await outputs(changed, side, ids as number[][])];
    expect(maxAbsDiff(a, b)).toBe(0);
  });

  it('keeps fields it does not model (raw) at every level', () => {
    const model = loadModel(TINY_BERT);
    // Made-up field numbers: 99 on ModelProto, GraphProto, NodeProto and TensorProto.
    const extra = (n: number): Uint8Array => new Writer().stringField(99, `extra-${n}`).finish();
    model.unknown = [extra(1)];
    model.graph.unknown = [extra(2)];
    model.graph.node[0]!.unknown = [extra(3)];
    model.graph.initializer[0]!.unknown = [extra(4)];
    const back = decodeModel(encodeModel(model));
    const text = (u: Uint8Array[] | undefined): string => Buffer.from(u![0]!).toString('latin1');
    expect(text(back.unknown)).toContain('extra-1');
    expect(text(back.graph.unknown)).toContain('extra-2');
    expect(text(back.graph.node[0]!.unknown)).toContain('extra-3');
    expect(text(back.graph.initializer[0]!.unknown)).toContain('extra-4');
  });

  it.skipIf(!hasMinilm)('round-trips the 90 MB MiniLM-shaped model in well under a few seconds, weights uncopied', () => {
    const bytes = fs.readFileSync(MINILM);
    const t0 = performance.now();
    const model = decodeModel(bytes);
    const t1 = performance.now();
    const out = encodeModel(model);
    const t2 = performance.now();
    expect(Buffer.compare(out, bytes)).toBe(0);
    expect(t1 - t0).toBeLessThan(1000);
    expect(t2 - t1).toBeLessThan(3000);
    // Decoded weights are views into the file's buffer, not copies.
    const big = model.graph.initializer.reduce((a, b) => ((a.rawData?.byteLength ?? 0) >= (b.rawData?.byteLength ?? 0) ? a : b));
    expect(big.rawData!.byteLength).toBeGreaterThan(10_000_000);
    expect(big.rawData!.buffer).toBe(bytes.buffer);
  });

  it('writes and reads external data that ORT loads, and splits such a model', async () => {
    const dir = tempDir('external-');
    try {
      const model: ModelProto = loadModel(TINY_BERT);
      const fd = fs.openSync(path.join(dir, 'model.onnx_data'), 'w');
      let offset = 0;
      forEachTensor(model.graph, (t) => {
        if (!t.rawData || t.rawData.byteLength < 1024) return;
        fs.writeSync(fd, t.rawData);
        t.externalData = [
          { key: 'location', value: 'model.onnx_data' },
          { key: 'offset', value: String(offset) },
          { key: 'length', value: String(t.rawData.byteLength) },
        ];
        t.dataLocation = DataLocation.EXTERNAL;
        offset += t.rawData.byteLength;
        delete t.rawData;
      });
      fs.closeSync(fd);
      const file = path.join(dir, 'model.onnx');
      saveModel(model, file);
      expect(fs.statSync(file).size).toBeLessThan(100_000);
      expect(maxAbsDiff(await outputs(file, 'right', bertIds), await outputs(TINY_BERT, 'right', bertIds))).toBe(0);

      const inlined = loadForSplit(file);
      forEachTensor(inlined.graph, (t) => expect(t.dataLocation).toBeUndefined());
      const original = loadModel(TINY_BERT);
      expect(floatValues(inlined.graph.initializer[0]!)).toEqual(floatValues(original.graph.initializer[0]!));

      const runner = await StagedRunner.create((await ensureStages(file)).dir, SESSION_OPTIONS);
      try {
        const batch = makeBatch(bertIds, 'right', runner.inputNames);
        const staged = (await runner.run(batch.feeds)).data as Float32Array;
        expect(maxAbsDiff(staged, await outputs(TINY_BERT, 'right', bertIds))).toBeLessThanOrEqual(1e-5);
      } finally {
        await runner.release();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
