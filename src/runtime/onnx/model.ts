/**
 * ONNX ModelProto codec: decode and encode the subset of onnx.proto the runtime works with.
 *
 * Schema: field numbers below are those of onnx/onnx.proto (https://github.com/onnx/onnx,
 * Copyright (c) ONNX Project Contributors, Apache License 2.0). Only the numbers and types are
 * used; the message and field names follow the schema in camelCase.
 *
 *   ModelProto        ir_version=1 opset_import=8 producer_name=2 producer_version=3 domain=4
 *                     model_version=5 doc_string=6 graph=7 metadata_props=14
 *                     (training_info=20, functions=25, ... kept raw)
 *   GraphProto        node=1 name=2 initializer=5 doc_string=10 input=11 output=12 value_info=13
 *                     (sparse_initializer=15, quantization_annotation=14, ... kept raw)
 *   NodeProto         input=1 output=2 name=3 op_type=4 domain=7 attribute=5 doc_string=6
 *                     (overload=8, metadata_props=9, ... kept raw)
 *   AttributeProto    name=1 ref_attr_name=21 doc_string=13 type=20 f=2 i=3 s=4 t=5 g=6
 *                     floats=7 ints=8 strings=9 tensors=10 graphs=11
 *                     (sparse_tensor=22, tp=14, sparse_tensors=23, type_protos=15 kept raw)
 *   TensorProto       dims=1 data_type=2 (segment=3 kept raw) float_data=4 int32_data=5
 *                     string_data=6 int64_data=7 name=8 doc_string=12 raw_data=9 external_data=13
 *                     data_location=14 double_data=10 uint64_data=11
 *   ValueInfoProto    name=1 type=2 doc_string=3
 *   TypeProto         tensor_type=1 denotation=6 (sequence/map/optional/sparse kept raw)
 *   TypeProto.Tensor  elem_type=1 shape=2
 *   TensorShapeProto  dim=1;  Dimension dim_value=1 dim_param=2 denotation=3
 *   OperatorSetIdProto domain=1 version=2
 *   StringStringEntryProto key=1 value=2
 *
 * Every message keeps the fields it does not model as raw encoded bytes (`unknown`) and writes
 * them back, so a decode → encode round trip loses nothing. Bytes fields (raw_data, s) are views
 * into the decoded buffer: keep that buffer alive and unmodified while the model is in use.
 */
import fs from 'node:fs';
import path from 'node:path';
import { type Int64, Reader, WireType, Writer } from './wire.js';

export type { Int64 } from './wire.js';

/** TensorProto.DataType. */
export const DataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
} as const;

/** AttributeProto.AttributeType. */
export const AttributeType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
  SPARSE_TENSOR: 11,
  SPARSE_TENSORS: 12,
  TYPE_PROTO: 13,
  TYPE_PROTOS: 14,
} as const;

export const DataLocation = { DEFAULT: 0, EXTERNAL: 1 } as const;

interface Unknown {
  /** Fields this codec does not model, as raw encoded bytes (tag included), in file order. */
  unknown?: Uint8Array[];
}

export interface StringStringEntry extends Unknown {
  key?: string;
  value?: string;
}

export interface OperatorSetId extends Unknown {
  domain?: string;
  version?: Int64;
}

export interface TensorProto extends Unknown {
  dims: Int64[];
  dataType?: number;
  floatData?: Float32Array;
  int32Data?: Int32Array;
  stringData?: Uint8Array[];
  int64Data?: BigInt64Array;
  name?: string;
  docString?: string;
  rawData?: Uint8Array;
  externalData?: StringStringEntry[];
  dataLocation?: number;
  doubleData?: Float64Array;
  uint64Data?: BigUint64Array;
}

export interface Dimension extends Unknown {
  dimValue?: Int64;
  dimParam?: string;
  denotation?: string;
}

export interface TensorShape extends Unknown {
  dim: Dimension[];
}

export interface TensorTypeProto extends Unknown {
  elemType?: number;
  shape?: TensorShape;
}

export interface TypeProto extends Unknown {
  tensorType?: TensorTypeProto;
  denotation?: string;
}

export interface ValueInfoProto extends Unknown {
  name: string;
  type?: TypeProto;
  docString?: string;
}

export interface AttributeProto extends Unknown {
  name: string;
  refAttrName?: string;
  docString?: string;
  type?: number;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  floats?: number[];
  ints?: Int64[];
  strings?: Uint8Array[];
  tensors?: TensorProto[];
  graphs?: GraphProto[];
}

export interface NodeProto extends Unknown {
  input: string[];
  output: string[];
  name?: string;
  opType: string;
  domain?: string;
  attribute: AttributeProto[];
  docString?: string;
}

export interface GraphProto extends Unknown {
  node: NodeProto[];
  name?: string;
  initializer: TensorProto[];
  docString?: string;
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  valueInfo: ValueInfoProto[];
}

export interface ModelProto extends Unknown {
  irVersion?: Int64;
  opsetImport: OperatorSetId[];
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: Int64;
  docString?: string;
  graph: GraphProto;
  metadataProps: StringStringEntry[];
}

// ---------------------------------------------------------------------------------------------
// Decoding

type Decoder<T> = (r: Reader, end: number) => T;

/** Runs `field` for each field in [r.pos, end); unknown fields are collected raw. */
function fields(r: Reader, end: number, msg: Unknown, field: (num: number, wt: number) => boolean): void {
  const outerEnd = r.end;
  r.end = end;
  try {
    while (r.pos < end) {
      const tagStart = r.pos;
      const tag = r.uint32();
      const num = tag >>> 3;
      const wt = tag & 7;
      if (num === 0) throw new Error('invalid field number 0');
      if (!field(num, wt)) (msg.unknown ??= []).push(r.unknown(tagStart, wt));
    }
  } finally {
    r.end = outerEnd;
  }
}

function sub<T>(r: Reader, decode: Decoder<T>): T {
  const [start, end] = r.span();
  const saved = r.pos;
  r.pos = start;
  const v = decode(r, end);
  r.pos = saved;
  return v;
}

const decodeEntry: Decoder<StringStringEntry> = (r, end) => {
  const m: StringStringEntry = {};
  fields(r, end, m, (n, wt) => {
    if (wt !== WireType.LengthDelimited) return false;
    if (n === 1) m.key = r.string();
    else if (n === 2) m.value = r.string();
    else return false;
    return true;
  });
  return m;
};

const decodeOpset: Decoder<OperatorSetId> = (r, end) => {
  const m: OperatorSetId = {};
  fields(r, end, m, (n, wt) => {
    if (n === 1 && wt === WireType.LengthDelimited) m.domain = r.string();
    else if (n === 2 && wt === WireType.Varint) m.version = r.int64();
    else return false;
    return true;
  });
  return m;
};

/** Copies little-endian bytes into a typed array (alignment-safe). */
function typedFromBytes<T extends ArrayBufferView>(bytes: Uint8Array, make: (buf: ArrayBuffer, len: number) => T, width: number): T {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return make(copy.buffer, bytes.byteLength / width);
}

function concatTyped<T extends { length: number; set(a: ArrayLike<never>, o: number): void }>(
  a: T | undefined,
  b: T,
  make: (n: number) => T,
): T {
  if (!a) return b;
  const out = make(a.length + b.length);
  out.set(a as unknown as ArrayLike<never>, 0);
  out.set(b as unknown as ArrayLike<never>, a.length);
  return out;
}

const decodeTensor: Decoder<TensorProto> = (r, end) => {
  const m: TensorProto = { dims: [] };
  fields(r, end, m, (n, wt) => {
    const LD = wt === WireType.LengthDelimited;
    switch (n) {
      case 1:
        if (wt !== WireType.Varint && !LD) return false;
        r.repeated(wt, () => m.dims.push(r.int64()));
        return true;
      case 2:
        if (wt !== WireType.Varint) return false;
        m.dataType = r.int32();
        return true;
      case 4: {
        if (LD) {
          const b = r.bytes();
          m.floatData = concatTyped(
            m.floatData,
            typedFromBytes(b, (buf, len) => new Float32Array(buf, 0, len), 4),
            (k) => new Float32Array(k),
          );
        } else if (wt === WireType.Fixed32) {
          m.floatData = concatTyped(m.floatData, Float32Array.of(r.float()), (k) => new Float32Array(k));
        } else return false;
        return true;
      }
      case 5: {
        if (wt !== WireType.Varint && !LD) return false;
        const vals: number[] = [];
        r.repeated(wt, () => vals.push(r.int32()));
        m.int32Data = concatTyped(m.int32Data, Int32Array.from(vals), (k) => new Int32Array(k));
        return true;
      }
      case 6:
        if (!LD) return false;
        (m.stringData ??= []).push(r.bytes());
        return true;
      case 7: {
        if (wt !== WireType.Varint && !LD) return false;
        const vals: bigint[] = [];
        r.repeated(wt, () => vals.push(BigInt(r.int64())));
        m.int64Data = concatTyped(m.int64Data, BigInt64Array.from(vals), (k) => new BigInt64Array(k));
        return true;
      }
      case 8:
        if (!LD) return false;
        m.name = r.string();
        return true;
      case 9:
        if (!LD) return false;
        m.rawData = r.bytes();
        return true;
      case 10: {
        if (LD) {
          const b = r.bytes();
          m.doubleData = concatTyped(
            m.doubleData,
            typedFromBytes(b, (buf, len) => new Float64Array(buf, 0, len), 8),
            (k) => new Float64Array(k),
          );
        } else if (wt === WireType.Fixed64) {
          m.doubleData = concatTyped(m.doubleData, Float64Array.of(r.double()), (k) => new Float64Array(k));
        } else return false;
        return true;
      }
      case 11: {
        if (wt !== WireType.Varint && !LD) return false;
        const vals: bigint[] = [];
        r.repeated(wt, () => vals.push(BigInt.asUintN(64, BigInt(r.uint64()))));
        m.uint64Data = concatTyped(m.uint64Data, BigUint64Array.from(vals), (k) => new BigUint64Array(k));
        return true;
      }
      case 12:
        if (!LD) return false;
        m.docString = r.string();
        return true;
      case 13:
        if (!LD) return false;
        (m.externalData ??= []).push(sub(r, decodeEntry));
        return true;
      case 14:
        if (wt !== WireType.Varint) return false;
        m.dataLocation = r.int32();
        return true;
      default:
        return false;
    }
  });
  return m;
};

const decodeDimension: Decoder<Dimension> = (r, end) => {
  const m: Dimension = {};
  fields(r, end, m, (n, wt) => {
    if (n === 1 && wt === WireType.Varint) m.dimValue = r.int64();
    else if (n === 2 && wt === WireType.LengthDelimited) m.dimParam = r.string();
    else if (n === 3 && wt === WireType.LengthDelimited) m.denotation = r.string();
    else return false;
    return true;
  });
  return m;
};

const decodeShape: Decoder<TensorShape> = (r, end) => {
  const m: TensorShape = { dim: [] };
  fields(r, end, m, (n, wt) => {
    if (n === 1 && wt === WireType.LengthDelimited) m.dim.push(sub(r, decodeDimension));
    else return false;
    return true;
  });
  return m;
};

const decodeTensorType: Decoder<TensorTypeProto> = (r, end) => {
  const m: TensorTypeProto = {};
  fields(r, end, m, (n, wt) => {
    if (n === 1 && wt === WireType.Varint) m.elemType = r.int32();
    else if (n === 2 && wt === WireType.LengthDelimited) m.shape = sub(r, decodeShape);
    else return false;
    return true;
  });
  return m;
};

const decodeType: Decoder<TypeProto> = (r, end) => {
  const m: TypeProto = {};
  fields(r, end, m, (n, wt) => {
    if (n === 1 && wt === WireType.LengthDelimited) m.tensorType = sub(r, decodeTensorType);
    else if (n === 6 && wt === WireType.LengthDelimited) m.denotation = r.string();
    else return false;
    return true;
  });
  return m;
};

const decodeValueInfo: Decoder<ValueInfoProto> = (r, end) => {
  const m: ValueInfoProto = { name: '' };
  fields(r, end, m, (n, wt) => {
    if (wt !== WireType.LengthDelimited) return false;
    if (n === 1) m.name = r.string();
    else if (n === 2) m.type = sub(r, decodeType);
    else if (n === 3) m.docString = r.string();
    else return false;
    return true;
  });
  return m;
};

const decodeAttribute: Decoder<AttributeProto> = (r, end) => {
  const m: AttributeProto = { name: '' };
  fields(r, end, m, (n, wt) => {
    const LD = wt === WireType.LengthDelimited;
    switch (n) {
      case 1:
        if (!LD) return false;
        m.name = r.string();
        return true;
      case 21:
        if (!LD) return false;
        m.refAttrName = r.string();
        return true;
      case 13:
        if (!LD) return false;
        m.docString = r.string();
        return true;
      case 20:
        if (wt !== WireType.Varint) return false;
        m.type = r.int32();
        return true;
      case 2:
        if (wt !== WireType.Fixed32) return false;
        m.f = r.float();
        return true;
      case 3:
        if (wt !== WireType.Varint) return false;
        m.i = r.int64();
        return true;
      case 4:
        if (!LD) return false;
        m.s = r.bytes();
        return true;
      case 5:
        if (!LD) return false;
        m.t = sub(r, decodeTensor);
        return true;
      case 6:
        if (!LD) return false;
        m.g = sub(r, decodeGraph);
        return true;
      case 7:
        if (wt !== WireType.Fixed32 && !LD) return false;
        r.repeated(wt, () => (m.floats ??= []).push(r.float()));
        return true;
      case 8:
        if (wt !== WireType.Varint && !LD) return false;
        r.repeated(wt, () => (m.ints ??= []).push(r.int64()));
        return true;
      case 9:
        if (!LD) return false;
        (m.strings ??= []).push(r.bytes());
        return true;
      case 10:
        if (!LD) return false;
        (m.tensors ??= []).push(sub(r, decodeTensor));
        return true;
      case 11:
        if (!LD) return false;
        (m.graphs ??= []).push(sub(r, decodeGraph));
        return true;
      default:
        return false;
    }
  });
  return m;
};

const decodeNode: Decoder<NodeProto> = (r, end) => {
  const m: NodeProto = { input: [], output: [], opType: '', attribute: [] };
  fields(r, end, m, (n, wt) => {
    if (wt !== WireType.LengthDelimited) return false;
    switch (n) {
      case 1:
        m.input.push(r.string());
        return true;
      case 2:
        m.output.push(r.string());
        return true;
      case 3:
        m.name = r.string();
        return true;
      case 4:
        m.opType = r.string();
        return true;
      case 7:
        m.domain = r.string();
        return true;
      case 5:
        m.attribute.push(sub(r, decodeAttribute));
        return true;
      case 6:
        m.docString = r.string();
        return true;
      default:
        return false;
    }
  });
  return m;
};

function decodeGraph(r: Reader, end: number): GraphProto {
  const m: GraphProto = { node: [], initializer: [], input: [], output: [], valueInfo: [] };
  fields(r, end, m, (n, wt) => {
    if (wt !== WireType.LengthDelimited) return false;
    switch (n) {
      case 1:
        m.node.push(sub(r, decodeNode));
        return true;
      case 2:
        m.name = r.string();
        return true;
      case 5:
        m.initializer.push(sub(r, decodeTensor));
        return true;
      case 10:
        m.docString = r.string();
        return true;
      case 11:
        m.input.push(sub(r, decodeValueInfo));
        return true;
      case 12:
        m.output.push(sub(r, decodeValueInfo));
        return true;
      case 13:
        m.valueInfo.push(sub(r, decodeValueInfo));
        return true;
      default:
        return false;
    }
  });
  return m;
}

/** Decodes a serialized ModelProto. Byte fields stay views into `bytes`. */
export function decodeModel(bytes: Uint8Array): ModelProto {
  const r = new Reader(bytes);
  const m: ModelProto = { opsetImport: [], graph: { node: [], initializer: [], input: [], output: [], valueInfo: [] }, metadataProps: [] };
  let sawGraph = false;
  fields(r, r.end, m, (n, wt) => {
    switch (n) {
      case 1:
        if (wt !== WireType.Varint) return false;
        m.irVersion = r.int64();
        return true;
      case 8:
        if (wt !== WireType.LengthDelimited) return false;
        m.opsetImport.push(sub(r, decodeOpset));
        return true;
      case 2:
        if (wt !== WireType.LengthDelimited) return false;
        m.producerName = r.string();
        return true;
      case 3:
        if (wt !== WireType.LengthDelimited) return false;
        m.producerVersion = r.string();
        return true;
      case 4:
        if (wt !== WireType.LengthDelimited) return false;
        m.domain = r.string();
        return true;
      case 5:
        if (wt !== WireType.Varint) return false;
        m.modelVersion = r.int64();
        return true;
      case 6:
        if (wt !== WireType.LengthDelimited) return false;
        m.docString = r.string();
        return true;
      case 7:
        if (wt !== WireType.LengthDelimited || sawGraph) return false;
        m.graph = sub(r, decodeGraph);
        sawGraph = true;
        return true;
      case 14:
        if (wt !== WireType.LengthDelimited) return false;
        m.metadataProps.push(sub(r, decodeEntry));
        return true;
      default:
        return false;
    }
  });
  if (!sawGraph) throw new Error('not an ONNX model: ModelProto has no graph');
  return m;
}

// ---------------------------------------------------------------------------------------------
// Encoding (fields in field-number order, then the unknown fields as they came)

function writeUnknown(w: Writer, m: Unknown): void {
  if (m.unknown) for (const u of m.unknown) w.raw(u);
}

function encodeEntry(w: Writer, m: StringStringEntry): void {
  if (m.key !== undefined) w.stringField(1, m.key);
  if (m.value !== undefined) w.stringField(2, m.value);
  writeUnknown(w, m);
}

function encodeOpset(w: Writer, m: OperatorSetId): void {
  if (m.domain !== undefined) w.stringField(1, m.domain);
  if (m.version !== undefined) w.int64Field(2, m.version);
  writeUnknown(w, m);
}

function typedBytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function encodeTensor(w: Writer, m: TensorProto): void {
  // dims is declared unpacked in onnx.proto (proto2 without [packed = true]).
  for (const d of m.dims) w.int64Field(1, d);
  if (m.dataType !== undefined) w.int32Field(2, m.dataType);
  if (m.floatData?.length) w.bytesField(4, typedBytes(m.floatData));
  if (m.int32Data?.length) {
    const data = m.int32Data;
    w.packed(5, (p) => {
      for (let i = 0; i < data.length; i++) p.int32(data[i]!);
    });
  }
  if (m.stringData) for (const s of m.stringData) w.bytesField(6, s);
  if (m.int64Data?.length) {
    const data = m.int64Data;
    w.packed(7, (p) => {
      for (let i = 0; i < data.length; i++) p.int64(data[i]!);
    });
  }
  if (m.name !== undefined) w.stringField(8, m.name);
  if (m.rawData !== undefined) w.bytesField(9, m.rawData);
  if (m.doubleData?.length) w.bytesField(10, typedBytes(m.doubleData));
  if (m.uint64Data?.length) {
    const data = m.uint64Data;
    w.packed(11, (p) => {
      for (let i = 0; i < data.length; i++) p.int64(data[i]!);
    });
  }
  if (m.docString !== undefined) w.stringField(12, m.docString);
  if (m.externalData) for (const e of m.externalData) w.message(13, (c) => encodeEntry(c, e));
  if (m.dataLocation !== undefined) w.int32Field(14, m.dataLocation);
  writeUnknown(w, m);
}

function encodeDimension(w: Writer, m: Dimension): void {
  if (m.dimValue !== undefined) w.int64Field(1, m.dimValue);
  if (m.dimParam !== undefined) w.stringField(2, m.dimParam);
  if (m.denotation !== undefined) w.stringField(3, m.denotation);
  writeUnknown(w, m);
}

function encodeShape(w: Writer, m: TensorShape): void {
  for (const d of m.dim) w.message(1, (c) => encodeDimension(c, d));
  writeUnknown(w, m);
}

function encodeTensorType(w: Writer, m: TensorTypeProto): void {
  if (m.elemType !== undefined) w.int32Field(1, m.elemType);
  if (m.shape) {
    const shape = m.shape;
    w.message(2, (c) => encodeShape(c, shape));
  }
  writeUnknown(w, m);
}

function encodeType(w: Writer, m: TypeProto): void {
  if (m.tensorType) {
    const t = m.tensorType;
    w.message(1, (c) => encodeTensorType(c, t));
  }
  if (m.denotation !== undefined) w.stringField(6, m.denotation);
  writeUnknown(w, m);
}

function encodeValueInfo(w: Writer, m: ValueInfoProto): void {
  w.stringField(1, m.name);
  if (m.type) {
    const t = m.type;
    w.message(2, (c) => encodeType(c, t));
  }
  if (m.docString !== undefined) w.stringField(3, m.docString);
  writeUnknown(w, m);
}

function encodeAttribute(w: Writer, m: AttributeProto): void {
  w.stringField(1, m.name);
  if (m.f !== undefined) w.floatField(2, m.f);
  if (m.i !== undefined) w.int64Field(3, m.i);
  if (m.s !== undefined) w.bytesField(4, m.s);
  if (m.t) {
    const t = m.t;
    w.message(5, (c) => encodeTensor(c, t));
  }
  if (m.g) {
    const g = m.g;
    w.message(6, (c) => encodeGraph(c, g));
  }
  if (m.floats) for (const f of m.floats) w.floatField(7, f);
  if (m.ints) for (const i of m.ints) w.int64Field(8, i);
  if (m.strings) for (const s of m.strings) w.bytesField(9, s);
  if (m.tensors) for (const t of m.tensors) w.message(10, (c) => encodeTensor(c, t));
  if (m.graphs) for (const g of m.graphs) w.message(11, (c) => encodeGraph(c, g));
  if (m.docString !== undefined) w.stringField(13, m.docString);
  if (m.type !== undefined) w.int32Field(20, m.type);
  if (m.refAttrName !== undefined) w.stringField(21, m.refAttrName);
  writeUnknown(w, m);
}

function encodeNode(w: Writer, m: NodeProto): void {
  for (const s of m.input) w.stringField(1, s);
  for (const s of m.output) w.stringField(2, s);
  if (m.name !== undefined) w.stringField(3, m.name);
  w.stringField(4, m.opType);
  for (const a of m.attribute) w.message(5, (c) => encodeAttribute(c, a));
  if (m.docString !== undefined) w.stringField(6, m.docString);
  if (m.domain !== undefined) w.stringField(7, m.domain);
  writeUnknown(w, m);
}

function encodeGraph(w: Writer, m: GraphProto): void {
  for (const n of m.node) w.message(1, (c) => encodeNode(c, n));
  if (m.name !== undefined) w.stringField(2, m.name);
  for (const t of m.initializer) w.message(5, (c) => encodeTensor(c, t));
  if (m.docString !== undefined) w.stringField(10, m.docString);
  for (const v of m.input) w.message(11, (c) => encodeValueInfo(c, v));
  for (const v of m.output) w.message(12, (c) => encodeValueInfo(c, v));
  for (const v of m.valueInfo) w.message(13, (c) => encodeValueInfo(c, v));
  writeUnknown(w, m);
}

function encodeModelTo(w: Writer, m: ModelProto): void {
  if (m.irVersion !== undefined) w.int64Field(1, m.irVersion);
  if (m.producerName !== undefined) w.stringField(2, m.producerName);
  if (m.producerVersion !== undefined) w.stringField(3, m.producerVersion);
  if (m.domain !== undefined) w.stringField(4, m.domain);
  if (m.modelVersion !== undefined) w.int64Field(5, m.modelVersion);
  if (m.docString !== undefined) w.stringField(6, m.docString);
  w.message(7, (c) => encodeGraph(c, m.graph));
  for (const o of m.opsetImport) w.message(8, (c) => encodeOpset(c, o));
  for (const e of m.metadataProps) w.message(14, (c) => encodeEntry(c, e));
  writeUnknown(w, m);
}

/** Serializes a ModelProto into one buffer. */
export function encodeModel(m: ModelProto): Buffer {
  const w = new Writer();
  encodeModelTo(w, m);
  return w.finish();
}

/** Serializes a ModelProto as a list of chunks (weights referenced, not copied). */
export function encodeModelParts(m: ModelProto): Uint8Array[] {
  const w = new Writer();
  encodeModelTo(w, m);
  return w.parts();
}

// ---------------------------------------------------------------------------------------------
// Files

export function loadModel(file: string): ModelProto {
  return decodeModel(fs.readFileSync(file));
}

/** Writes a model without first concatenating it into one buffer; atomic (temp file + rename). */
export function saveModel(m: ModelProto, file: string): number {
  const parts = encodeModelParts(m);
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  let size = 0;
  try {
    for (const p of parts) {
      let off = 0;
      while (off < p.byteLength) off += fs.writeSync(fd, p, off, p.byteLength - off);
      size += p.byteLength;
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  return size;
}

// ---------------------------------------------------------------------------------------------
// Tensor helpers

const ELEMENT_SIZE: Record<number, number> = {
  [DataType.FLOAT]: 4,
  [DataType.UINT8]: 1,
  [DataType.INT8]: 1,
  [DataType.UINT16]: 2,
  [DataType.INT16]: 2,
  [DataType.INT32]: 4,
  [DataType.INT64]: 8,
  [DataType.BOOL]: 1,
  [DataType.FLOAT16]: 2,
  [DataType.DOUBLE]: 8,
  [DataType.UINT32]: 4,
  [DataType.UINT64]: 8,
  [DataType.BFLOAT16]: 2,
};

export function elementSize(dataType: number): number | undefined {
  return ELEMENT_SIZE[dataType];
}

export function toNumber(v: Int64): number {
  return typeof v === 'number' ? v : Number(v);
}

export function tensorElementCount(t: TensorProto): number {
  let n = 1;
  for (const d of t.dims) n *= toNumber(d);
  return n;
}

export function isExternal(t: TensorProto): boolean {
  return t.dataLocation === DataLocation.EXTERNAL;
}

/** The float values of a FLOAT tensor (raw_data or float_data); a copy when raw_data is unaligned. */
export function floatValues(t: TensorProto): Float32Array {
  if (t.dataType !== DataType.FLOAT) throw new Error(`tensor ${t.name ?? '?'} is not float (data_type ${t.dataType})`);
  if (isExternal(t)) throw new Error(`tensor ${t.name ?? '?'} keeps its data in an external file; inline it first`);
  if (t.rawData) {
    const raw = t.rawData;
    if (raw.byteOffset % 4 === 0) return new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    const copy = new Uint8Array(raw.byteLength);
    copy.set(raw);
    return new Float32Array(copy.buffer);
  }
  return t.floatData ?? new Float32Array(0);
}

/** Integer values of an int32/int64/uint8/int8 tensor as numbers (for small tensors: axes, shapes). */
export function intValues(t: TensorProto): number[] {
  const dt = t.dataType;
  if (t.rawData) {
    const raw = Buffer.from(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength);
    const out: number[] = [];
    const size = elementSize(dt ?? 0);
    if (!size) throw new Error(`tensor ${t.name ?? '?'}: unsupported data_type ${dt}`);
    for (let off = 0; off + size <= raw.byteLength; off += size) {
      if (dt === DataType.INT64) out.push(Number(raw.readBigInt64LE(off)));
      else if (dt === DataType.INT32) out.push(raw.readInt32LE(off));
      else if (dt === DataType.INT8) out.push(raw.readInt8(off));
      else if (dt === DataType.UINT8 || dt === DataType.BOOL) out.push(raw.readUInt8(off));
      else throw new Error(`tensor ${t.name ?? '?'}: not an integer tensor (data_type ${dt})`);
    }
    return out;
  }
  if (t.int64Data) return Array.from(t.int64Data, Number);
  if (t.int32Data) return Array.from(t.int32Data);
  return [];
}

/** Builds a tensor from raw little-endian bytes. */
export function makeTensor(name: string, dataType: number, dims: number[], data: ArrayBufferView): TensorProto {
  return { name, dataType, dims: [...dims], rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

export function makeValueInfo(name: string, elemType: number, dims?: (number | string | undefined)[]): ValueInfoProto {
  const tensorType: TensorTypeProto = { elemType };
  if (dims) {
    tensorType.shape = {
      dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : typeof d === 'string' ? { dimParam: d } : {})),
    };
  }
  return { name, type: { tensorType } };
}

export function attr(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

export function attrInt(node: NodeProto, name: string, fallback: number): number {
  const a = attr(node, name);
  return a?.i !== undefined ? toNumber(a.i) : fallback;
}

/**
 * Replaces external-data tensors by inline raw_data read from their files (relative to `baseDir`),
 * so the model can be written elsewhere. Throws if a referenced file or range is missing.
 */
export function inlineExternalData(m: ModelProto, baseDir: string): number {
  let count = 0;
  const files = new Map<string, number>();
  const visit = (t: TensorProto): void => {
    if (!isExternal(t)) return;
    const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    const location = kv.get('location');
    if (!location) throw new Error(`tensor ${t.name ?? '?'}: external data without a location`);
    const file = path.resolve(baseDir, location);
    let fd = files.get(file);
    if (fd === undefined) {
      fd = fs.openSync(file, 'r');
      files.set(file, fd);
    }
    const offset = Number(kv.get('offset') ?? 0);
    const length = kv.has('length') ? Number(kv.get('length')) : fs.fstatSync(fd).size - offset;
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const n = fs.readSync(fd, buf, got, length - got, offset + got);
      if (n === 0) throw new Error(`tensor ${t.name ?? '?'}: ${file} ends before offset ${offset} + ${length}`);
      got += n;
    }
    t.rawData = buf;
    delete t.externalData;
    delete t.dataLocation;
    count++;
  };
  try {
    forEachTensor(m.graph, visit);
  } finally {
    for (const fd of files.values()) fs.closeSync(fd);
  }
  return count;
}

/** Visits every TensorProto in a graph: initializers and tensor attributes, subgraphs included. */
export function forEachTensor(g: GraphProto, visit: (t: TensorProto) => void): void {
  for (const t of g.initializer) visit(t);
  for (const n of g.node) {
    for (const a of n.attribute) {
      if (a.t) visit(a.t);
      if (a.tensors) for (const t of a.tensors) visit(t);
      if (a.g) forEachTensor(a.g, visit);
      if (a.graphs) for (const sg of a.graphs) forEachTensor(sg, visit);
    }
  }
}
