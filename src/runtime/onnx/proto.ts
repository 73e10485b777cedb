/**
 * ONNX's messages as the runtime uses them: the types and schemas generated from onnx.proto by
 * protoc-gen-es (gen/onnx_pb.ts, `npm run onnx:generate`), decoded and encoded by @bufbuild/protobuf.
 *
 * The runtime relies on two behaviours of the library, both asserted in tests/onnx/codec.test.ts:
 *  - bytes fields (a tensor's raw_data) decode as views of the input buffer (BinaryReader.bytes()
 *    returns a subarray), so a decoded model holds no second copy of its weights: keep the buffer
 *    alive and unmodified while the model is in use;
 *  - fields the schema does not know (a model from a newer ONNX) are kept in `$unknown` and written
 *    back after the known ones, so decode → encode loses nothing.
 *
 * proto2 in protobuf-es v2: int64 fields are bigint; singular scalars always read as a value (the
 * default when unset) and presence is `isFieldSet`; message fields are undefined when unset.
 *
 * Encoding goes through `encodeModelChunks`, which is toBinary for every message except along the
 * path to the weights (ModelProto.graph → GraphProto.initializer → TensorProto.raw_data), where
 * it writes the framing itself and references large raw_data instead of copying it. toBinary alone
 * grows one buffer by doubling and copies it out at the end: on the 86 MiB MiniLM-shaped model it
 * added 237 MiB at peak, where encodeModel adds 88 (its output) and saveModel 2, as the hand-written
 * codec did (benchmarks/onnx-codec.ts, benchmarks/RESULTS.md).
 */
import {
  create,
  type DescField,
  type DescMessage,
  fromBinary,
  isFieldSet,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from '@bufbuild/protobuf';
import { reflect } from '@bufbuild/protobuf/reflect';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import {
  type ModelProto as GeneratedModelProto,
  type GraphProto,
  GraphProtoSchema,
  ModelProtoSchema,
  type TensorProto,
  TensorProtoSchema,
} from './gen/onnx_pb.js';

export * from './gen/onnx_pb.js';
export {
  AttributeProto_AttributeType as AttributeType,
  TensorProto_DataLocation as DataLocation,
  TensorProto_DataType as DataType,
} from './gen/onnx_pb.js';

/** A ModelProto with its graph, which every model the runtime handles has (decodeModel checks). */
export type ModelProto = GeneratedModelProto & { graph: GraphProto };

/** Decodes a serialized ModelProto. Bytes fields stay views into `bytes`. */
export function decodeModel(bytes: Uint8Array): ModelProto {
  const model = fromBinary(ModelProtoSchema, bytes);
  if (!model.graph) throw new Error('not an ONNX model: ModelProto has no graph');
  return model as ModelProto;
}

/** Builds a ModelProto (nested messages may be given as plain init objects, as for `create`). */
export function makeModel(
  init: MessageInitShape<typeof ModelProtoSchema> & { graph: MessageInitShape<typeof GraphProtoSchema> },
): ModelProto {
  return create(ModelProtoSchema, init) as ModelProto;
}

/** Serializes a ModelProto into one buffer (the chunks, concatenated once). */
export function encodeModel(model: ModelProto): Buffer {
  const chunks: Uint8Array[] = [];
  const size = encodeChunks(ModelProtoSchema, model, chunks);
  return Buffer.concat(chunks, size);
}

/** Serializes a ModelProto as a list of chunks whose concatenation is toBinary's output; large weights are referenced, not copied. */
export function encodeModelChunks(model: ModelProto): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  encodeChunks(ModelProtoSchema, model, chunks);
  return chunks;
}

/**
 * A shallow copy of `msg` with `overrides` applied: the fields that are set in `msg` are shared
 * with it (lists and sub-messages included), unknown fields too. What `{ ...msg, ...overrides }`
 * would be for plain objects, keeping the message's presence information.
 */
export function withFields<Desc extends DescMessage, T extends MessageShape<Desc>>(schema: Desc, msg: T, overrides: Partial<T> = {}): T {
  const copy = pickFields(schema, msg, () => true);
  if (msg.$unknown) copy.$unknown = msg.$unknown;
  return Object.assign(copy, overrides) as T;
}

/** A new message holding the fields of `msg` that `keep` accepts and that are set (values shared). */
function pickFields<Desc extends DescMessage>(schema: Desc, msg: MessageShape<Desc>, keep: (f: DescField) => boolean): MessageShape<Desc> {
  const out = create(schema);
  const from = reflect(schema, msg, false);
  const to = reflect(schema, out, false);
  for (const f of schema.fields) if (keep(f) && from.isSet(f)) to.set(f, from.get(f) as never);
  return out;
}

/** raw_data shorter than this is copied by toBinary with the rest of its tensor. */
const REFERENCE_BYTES = 64 * 1024;

/** The field each message on the path to the weights descends into. */
const DESCEND = new Map<string, DescField>([
  [ModelProtoSchema.typeName, ModelProtoSchema.field.graph!],
  [GraphProtoSchema.typeName, GraphProtoSchema.field.initializer!],
  [TensorProtoSchema.typeName, TensorProtoSchema.field.rawData!],
]);

function lengthPrefix(fieldNo: number, length: number): Uint8Array {
  return new BinaryWriter().tag(fieldNo, WireType.LengthDelimited).uint32(length).finish();
}

/**
 * Appends the encoding of `msg` to `out` and returns its size. Output order is toBinary's: known
 * fields by number, then unknown fields; the descended field sits between the fields numbered
 * below it and those above, each part written by toBinary.
 */
function encodeChunks(schema: DescMessage, msg: MessageShape<DescMessage>, out: Uint8Array[]): number {
  const push = (bytes: Uint8Array): number => {
    if (bytes.byteLength) out.push(bytes);
    return bytes.byteLength;
  };
  const field = DESCEND.get(schema.typeName);
  const small = field === TensorProtoSchema.field.rawData && (msg as TensorProto).rawData.byteLength < REFERENCE_BYTES;
  if (!field || small || !isFieldSet(msg, field)) return push(toBinary(schema, msg));

  const before = pickFields(schema, msg, (f) => f.number < field.number);
  const after = pickFields(schema, msg, (f) => f.number > field.number);
  if (msg.$unknown) after.$unknown = msg.$unknown;
  let size = push(toBinary(schema, before));
  const value = (msg as unknown as Record<string, unknown>)[field.localName];
  if (field.fieldKind === 'scalar') {
    const bytes = value as Uint8Array;
    size += push(lengthPrefix(field.number, bytes.byteLength)) + push(bytes);
  } else if (field.fieldKind === 'message' || field.fieldKind === 'list') {
    const items = (field.fieldKind === 'list' ? value : [value]) as MessageShape<DescMessage>[];
    const sub = field.message!;
    for (const item of items) {
      const chunks: Uint8Array[] = [];
      const length = encodeChunks(sub, item, chunks);
      size += push(lengthPrefix(field.number, length)) + length;
      for (const c of chunks) out.push(c);
    }
  }
  return size + push(toBinary(schema, after));
}
