/** Tensor and value-info helpers over the ONNX messages (proto.ts): reading values, building tensors and types. */
import { create, isFieldSet } from '@bufbuild/protobuf';
import {
  DataLocation,
  DataType,
  type GraphProto,
  type TensorProto,
  TensorProtoSchema,
  type TypeProto,
  type TypeProto_Tensor,
  TypeProtoSchema,
  type ValueInfoProto,
  ValueInfoProtoSchema,
} from './proto.js';

export function isExternal(t: TensorProto): boolean {
  return t.dataLocation === DataLocation.EXTERNAL;
}

function hasRawData(t: TensorProto): boolean {
  return isFieldSet(t, TensorProtoSchema.field.rawData!);
}

/** Bytes of data a tensor holds inline: raw_data plus the typed repeated fields (strings not counted). */
export function inlineDataBytes(t: TensorProto): number {
  return (
    t.rawData.byteLength +
    4 * (t.floatData.length + t.int32Data.length) +
    8 * (t.int64Data.length + t.doubleData.length + t.uint64Data.length)
  );
}

/** The float values of a FLOAT tensor (raw_data or float_data); a copy unless raw_data is 4-byte aligned. */
export function floatValues(t: TensorProto): Float32Array {
  if (t.dataType !== DataType.FLOAT) throw new Error(`tensor ${t.name || '?'} is not float (data_type ${t.dataType})`);
  if (isExternal(t)) throw new Error(`tensor ${t.name || '?'} keeps its data in an external file; inline it first`);
  if (!hasRawData(t)) return Float32Array.from(t.floatData);
  const raw = t.rawData;
  if (raw.byteOffset % 4 === 0) return new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  return new Float32Array(new Uint8Array(raw).buffer);
}

/** Builds a tensor from raw little-endian bytes (a view of `data`, not a copy). */
export function makeTensor(name: string, dataType: number, dims: number[], data: ArrayBufferView): TensorProto {
  return create(TensorProtoSchema, {
    name,
    dataType,
    dims: dims.map(BigInt),
    rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  });
}

/** A tensor type; dims: number = fixed, string = symbolic, undefined = unknown; no dims = unknown rank. */
export function makeTensorType(elemType: number, dims?: (number | string | undefined)[]): TypeProto {
  const shape = dims && {
    dim: dims.map((d) =>
      typeof d === 'number' && d >= 0
        ? { value: { case: 'dimValue' as const, value: BigInt(d) } }
        : typeof d === 'string' && d !== ''
          ? { value: { case: 'dimParam' as const, value: d } }
          : {},
    ),
  };
  return create(TypeProtoSchema, { value: { case: 'tensorType', value: { elemType, shape } } });
}

export function makeValueInfo(name: string, elemType: number, dims?: (number | string | undefined)[]): ValueInfoProto {
  return create(ValueInfoProtoSchema, { name, type: makeTensorType(elemType, dims) });
}

/** The tensor branch of a TypeProto, if it is a tensor type. */
export function tensorTypeOf(t: TypeProto | undefined): TypeProto_Tensor | undefined {
  return t?.value.case === 'tensorType' ? t.value.value : undefined;
}

/** Visits every TensorProto in a graph: initializers and tensor attributes, subgraphs included. */
export function forEachTensor(g: GraphProto, visit: (t: TensorProto) => void): void {
  for (const t of g.initializer) visit(t);
  for (const n of g.node) {
    for (const a of n.attribute) {
      if (a.t) visit(a.t);
      for (const t of a.tensors) visit(t);
      if (a.g) forEachTensor(a.g, visit);
      for (const sg of a.graphs) forEachTensor(sg, visit);
    }
  }
}
