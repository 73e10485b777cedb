import fs from 'node:fs';
import path from 'node:path';
import { clearField, create, toBinary } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { ensureStages, loadForSplit, writeStages } from '../../src/runtime/onnx/cache.js';
import { loadModel, saveModel } from '../../src/runtime/onnx/model.js';
import {
  AttributeProtoSchema,
  AttributeType,
  DataLocation,
  decodeModel,
  encodeModel,
  encodeModelChunks,
  ModelProtoSchema,
  StringStringEntryProtoSchema,
  TensorProtoSchema,
} from '../../src/runtime/onnx/proto.js';
import { splitModel } from '../../src/runtime/onnx/split.js';
import { StagedRunner } from '../../src/runtime/onnx/staged.js';
import { floatValues, forEachTensor, isExternal } from '../../src/runtime/onnx/tensor.js';
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

/** The token states of tiny-bert's batch run through the stages in `dir`. */
async function stagedOutputs(dir: string): Promise<Float32Array> {
  const runner = await StagedRunner.create(dir, SESSION_OPTIONS);
  try {
    return (await runner.run(makeBatch(bertIds, 'right', runner.inputNames).feeds)).data as Float32Array;
  } finally {
    await runner.release();
  }
}

/** The initializer with the most raw_data. */
function largestInitializer(model: ReturnType<typeof decodeModel>) {
  return model.graph.initializer.reduce((a, b) => (a.rawData.byteLength >= b.rawData.byteLength ? a : b));
}

describe('proto2 details', () => {
  it('reads packed and unpacked repeated fields alike (dims is declared unpacked)', () => {
    // A TensorProto with dims [2, 3] and data_type FLOAT, inside a minimal ModelProto.graph.initializer.
    const wrap = (tensor: Uint8Array): Uint8Array => {
      const graph = new BinaryWriter().tag(5, WireType.LengthDelimited).bytes(tensor).finish();
      return new BinaryWriter().tag(7, WireType.LengthDelimited).bytes(graph).finish();
    };
    const unpacked = wrap(
      new BinaryWriter().tag(1, WireType.Varint).int64(2).tag(1, WireType.Varint).int64(3).tag(2, WireType.Varint).int32(1).finish(),
    );
    const packed = wrap(
      new BinaryWriter().tag(1, WireType.LengthDelimited).fork().int64(2).int64(3).join().tag(2, WireType.Varint).int32(1).finish(),
    );
    const a = decodeModel(unpacked);
    const b = decodeModel(packed);
    expect(a.graph.initializer[0]!.dims).toEqual([2n, 3n]);
    expect(b.graph.initializer[0]!.dims).toEqual([2n, 3n]);
    // Written back unpacked, as onnx.proto declares and ONNX's own serializer writes.
    expect(encodeModel(b).equals(unpacked)).toBe(true);
  });

  it('round-trips int64 edge values as bigint, negative ints and floats', () => {
    const model = loadModel(TINY_BERT);
    const ints = [0n, 1n, 127n, 128n, 2n ** 31n, 2n ** 53n + 1n, 9223372036854775807n, -1n, -(2n ** 31n), -9223372036854775808n];
    model.graph.node[0]!.attribute.push(
      create(AttributeProtoSchema, { name: 'edge_ints', type: AttributeType.INTS, ints }),
      create(AttributeProtoSchema, { name: 'edge_i', type: AttributeType.INT, i: -5n }),
      create(AttributeProtoSchema, { name: 'edge_f', type: AttributeType.FLOAT, f: 1.5 }),
    );
    const back = decodeModel(encodeModel(model)).graph.node[0]!.attribute;
    expect(back.find((x) => x.name === 'edge_ints')!.ints).toEqual(ints);
    expect(back.find((x) => x.name === 'edge_i')!.i).toBe(-5n);
    expect(back.find((x) => x.name === 'edge_f')!.f).toBe(1.5);
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
    // The chunked writer's output is the library's own toBinary, byte for byte.
    expect(Buffer.compare(Buffer.from(toBinary(ModelProtoSchema, model)), bytes)).toBe(0);
    // Touch something so the model really is re-serialized from the object tree, then run it.
    model.metadataProps.push(create(StringStringEntryProtoSchema, { key: 'round-trip', value: 'yes' }));
    const changed = encodeModel(model);
    expect(changed.length).toBeGreaterThan(bytes.length);
    const entry = decodeModel(changed).metadataProps.at(-1)!;
    expect([entry.key, entry.value]).toEqual(['round-trip', 'yes']);
    const [a, b] = [await outputs(file, side, ids as number[][]), await outputs(changed, side, ids as number[][])];
    expect(maxAbsDiff(a, b)).toBe(0);
  });

  it('decodes weights as views of the file buffer and writes them back by reference', () => {
    const bytes = fs.readFileSync(TINY_BERT);
    const model = decodeModel(bytes);
    const big = largestInitializer(model);
    expect(big.rawData.byteLength).toBeGreaterThan(100_000);
    // Same memory, not a copy: the views lie inside the file's buffer.
    expect(big.rawData.buffer === bytes.buffer).toBe(true);
    expect(model.graph.initializer.every((t) => t.rawData.byteLength === 0 || t.rawData.buffer === bytes.buffer)).toBe(true);
    // encodeModelChunks hands the same view on instead of copying it.
    const chunks = encodeModelChunks(model);
    expect(chunks.includes(big.rawData)).toBe(true);
    expect(Buffer.compare(Buffer.concat(chunks), bytes)).toBe(0);
  });

  it('a model with fields from a newer ONNX loads, splits and saves with the fields intact', async () => {
    // Fields onnx.proto 1.12 (the schema the runtime is generated from) does not have, written as a
    // newer ONNX writes them: metadata_props on NodeProto (9) and GraphProto (16), and numbers no
    // ONNX uses yet on ModelProto and TensorProto.
    const entry = (key: string, value: string): Uint8Array =>
      toBinary(StringStringEntryProtoSchema, create(StringStringEntryProtoSchema, { key, value }));
    const field = (no: number, data: Uint8Array) => ({
      no,
      wireType: WireType.LengthDelimited,
      data: new BinaryWriter().bytes(data).finish().subarray(0),
    });
    const model = loadModel(TINY_BERT);
    const layerNode = model.graph.node.find((n) => n.name === '/encoder/layer.0/attention/self/query/MatMul')!;
    const layerWeight = model.graph.initializer.find((t) => t.name === layerNode.input[1])!;
    expect(layerWeight.rawData.byteLength).toBeGreaterThanOrEqual(4096); // large enough to move to the external file
    model.$unknown = [field(99, new TextEncoder().encode('model-extra'))];
    model.graph.$unknown = [field(16, entry('graph-key', 'graph-value'))];
    layerNode.$unknown = [field(9, entry('node-key', 'node-value'))];
    layerWeight.$unknown = [field(98, new TextEncoder().encode('tensor-extra'))];
    const bytes = encodeModel(model);

    // The raw payloads are in the file, and decoding keeps them where they were.
    const text = bytes.toString('latin1');
    for (const s of ['model-extra', 'graph-value', 'node-value', 'tensor-extra']) expect(text).toContain(s);
    const keep = (m: ReturnType<typeof decodeModel>, nodeName: string, weightName: string): string[] => {
      const u = (x: { $unknown?: { no: number; data: Uint8Array }[] } | undefined): string =>
        (x?.$unknown ?? []).map((f) => `${f.no}:${Buffer.from(f.data).toString('latin1')}`).join(',');
      return [
        u(m),
        u(m.graph),
        u(m.graph.node.find((n) => n.name === nodeName)),
        u(m.graph.initializer.find((t) => t.name === weightName)),
      ];
    };
    const expected = keep(model, layerNode.name, layerWeight.name);
    const dir = tempDir('newer-onnx-');
    try {
      const file = path.join(dir, 'model.onnx');
      fs.writeFileSync(file, bytes);
      expect(keep(loadModel(file), layerNode.name, layerWeight.name)).toEqual(expected);
      // Saved again: the same bytes.
      saveModel(loadModel(file), path.join(dir, 'again.onnx'));
      expect(Buffer.compare(fs.readFileSync(path.join(dir, 'again.onnx')), bytes)).toBe(0);

      // Split, and written as stages with external weights: layer 1's stage keeps the model's,
      // the node's and the tensor's fields (the stage graph is a new GraphProto).
      const result = splitModel(loadModel(file));
      expect(result.ok).toBe(true);
      if (!result.ok) return;
      const stagesDir = path.join(dir, 'stages');
      writeStages(result, stagesDir);
      const layer1 = result.manifest.stages.find((s) => s.name === 'layer1')!;
      const stage = loadModel(path.join(stagesDir, layer1.file));
      const [m, , n, t] = keep(stage, layerNode.name, layerWeight.name);
      expect([m, n, t]).toEqual([expected[0], expected[2], expected[3]]);
      expect(isExternal(stage.graph.initializer.find((x) => x.name === layerWeight.name)!)).toBe(true);
      // ONNX Runtime loads and runs the stages.
      expect(maxAbsDiff(await stagedOutputs(stagesDir), await outputs(TINY_BERT, 'right', bertIds))).toBeLessThanOrEqual(1e-5);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  const minilmTitle = 'round-trips the 90 MB MiniLM-shaped model byte for byte, weights uncopied';
  it.skipIf(!hasMinilm)(
    hasMinilm ? minilmTitle : `${minilmTitle} (skipped: ${MINILM} not generated; npm run model:minilm makes it)`,
    () => {
      const bytes = fs.readFileSync(MINILM);
      const model = decodeModel(bytes);
      const chunks = encodeModelChunks(model);
      expect(Buffer.compare(Buffer.concat(chunks), bytes)).toBe(0);
      const big = largestInitializer(model);
      expect(big.rawData.byteLength).toBeGreaterThan(10_000_000);
      expect(big.rawData.buffer === bytes.buffer).toBe(true);
      expect(chunks.includes(big.rawData)).toBe(true);
    },
  );

  it('writes and reads external data that ORT loads, and splits such a model', async () => {
    const dir = tempDir('external-');
    try {
      const model = loadModel(TINY_BERT);
      const fd = fs.openSync(path.join(dir, 'model.onnx_data'), 'w');
      let offset = 0;
      forEachTensor(model.graph, (t) => {
        if (t.rawData.byteLength < 1024) return;
        fs.writeSync(fd, t.rawData);
        t.externalData = [
          create(StringStringEntryProtoSchema, { key: 'location', value: 'model.onnx_data' }),
          create(StringStringEntryProtoSchema, { key: 'offset', value: String(offset) }),
          create(StringStringEntryProtoSchema, { key: 'length', value: String(t.rawData.byteLength) }),
        ];
        t.dataLocation = DataLocation.EXTERNAL;
        offset += t.rawData.byteLength;
        clearField(t, TensorProtoSchema.field.rawData!);
      });
      fs.closeSync(fd);
      const file = path.join(dir, 'model.onnx');
      saveModel(model, file);
      expect(fs.statSync(file).size).toBeLessThan(100_000);
      expect(maxAbsDiff(await outputs(file, 'right', bertIds), await outputs(TINY_BERT, 'right', bertIds))).toBe(0);

      const inlined = loadForSplit(file);
      forEachTensor(inlined.graph, (t) => expect(isExternal(t)).toBe(false));
      const original = loadModel(TINY_BERT);
      expect(floatValues(inlined.graph.initializer[0]!)).toEqual(floatValues(original.graph.initializer[0]!));

      const staged = await stagedOutputs((await ensureStages(file)).dir);
      expect(maxAbsDiff(staged, await outputs(TINY_BERT, 'right', bertIds))).toBeLessThanOrEqual(1e-5);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
