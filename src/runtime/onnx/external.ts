/**
 * External data: tensors whose bytes live in a separate file (`data_location: EXTERNAL`).
 *
 * `inlineExternalData` reads them back into raw_data, so a model can be split and written elsewhere.
 *
 * Weights in one external-data file, shared by several graphs:
 *
 * ONNX Runtime memory-maps an external-data file when it loads a session on the CPU and keeps
 * the initializers it does not rewrite as views of that mapping. The pages belong to the file,
 * so every session of the process that maps the same file (the unsplit graph, each per-layer
 * stage, each worker thread) shares one resident copy of the weights instead of holding its own.
 *
 * `externalizeWeights` writes each distinct initializer of a set of graphs once, at an offset
 * aligned to the page size (ONNX Runtime maps from the aligned offset), and points every graph's
 * tensor of that name at it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { clearField, create } from '@bufbuild/protobuf';
import { DataLocation, type ModelProto, StringStringEntryProtoSchema, type TensorProto, TensorProtoSchema } from './proto.js';
import { forEachTensor, inlineDataBytes, isExternal } from './tensor.js';

/** Offsets are multiples of this (64 KiB covers the page size and Windows' allocation granularity). */
export const EXTERNAL_ALIGNMENT = 65536;
/** Tensors smaller than this stay inline: shapes, axes and scalars are not worth a page each. */
export const EXTERNAL_MIN_BYTES = 4096;

export interface ExternalizeResult {
  /** Bytes of tensor data written (without alignment padding). */
  weightBytes: number;
  /** Size of the external-data file, padding included. */
  fileBytes: number;
  tensors: number;
}

/**
 * Moves every initializer with at least `minBytes` of raw data out of `models` into one file
 * `dataFile` (a path; the graphs must be saved in the same directory, since ONNX Runtime resolves
 * `location` relative to the graph file). Tensors with the same name in several graphs must hold
 * the same bytes (they do for stages cut from one graph) and are written once.
 */
export function externalizeWeights(models: ModelProto[], dataFile: string, minBytes = EXTERNAL_MIN_BYTES): ExternalizeResult {
  const location = path.basename(dataFile);
  const placed = new Map<string, { offset: number; length: number; data: Uint8Array }>();
  let end = 0;
  let weightBytes = 0;
  const place = (t: TensorProto): void => {
    if (isExternal(t) || t.rawData.byteLength < minBytes || !t.name) return;
    let at = placed.get(t.name);
    if (!at) {
      const offset = Math.ceil(end / EXTERNAL_ALIGNMENT) * EXTERNAL_ALIGNMENT;
      at = { offset, length: t.rawData.byteLength, data: t.rawData };
      placed.set(t.name, at);
      end = offset + at.length;
      weightBytes += at.length;
    } else if (at.length !== t.rawData.byteLength) {
      throw new Error(`initializer ${t.name} differs in size between graphs (${at.length} vs ${t.rawData.byteLength} bytes)`);
    }
    clearField(t, TensorProtoSchema.field.rawData!);
    t.dataLocation = DataLocation.EXTERNAL;
    t.externalData = [
      create(StringStringEntryProtoSchema, { key: 'location', value: location }),
      create(StringStringEntryProtoSchema, { key: 'offset', value: String(at.offset) }),
      create(StringStringEntryProtoSchema, { key: 'length', value: String(at.length) }),
    ];
  };
  for (const m of models) for (const t of m.graph.initializer) place(t);

  const tmp = `${dataFile}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    for (const { offset, data } of placed.values()) {
      let off = 0;
      while (off < data.byteLength) off += fs.writeSync(fd, data, off, data.byteLength - off, offset + off);
    }
    fs.ftruncateSync(fd, end);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, dataFile);
  return { weightBytes, fileBytes: end, tensors: placed.size };
}

/**
 * Bytes of initializer data a graph holds inline and in external files (what a session must make
 * resident). External ranges already in `seen` (location@offset) are not counted again, so a set
 * of graphs sharing one file counts each weight once.
 */
export function weightBytes(m: ModelProto, seen = new Set<string>()): { inline: number; external: number } {
  let inline = 0;
  let external = 0;
  forEachTensor(m.graph, (t) => {
    if (isExternal(t)) {
      const kv = externalEntries(t);
      const where = `${kv.get('location')}@${kv.get('offset') ?? 0}`;
      if (seen.has(where)) return;
      seen.add(where);
      external += Number(kv.get('length') ?? 0);
    } else {
      inline += inlineDataBytes(t);
    }
  });
  return { inline, external };
}

/** A tensor's external_data entries (location, offset, length, checksum) by key. */
function externalEntries(t: TensorProto): Map<string, string> {
  return new Map(t.externalData.map((e) => [e.key, e.value]));
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
    const kv = externalEntries(t);
    const location = kv.get('location');
    if (!location) throw new Error(`tensor ${t.name || '?'}: external data without a location`);
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
      if (n === 0) throw new Error(`tensor ${t.name || '?'}: ${file} ends before offset ${offset} + ${length}`);
      got += n;
    }
    t.rawData = buf;
    t.externalData = [];
    clearField(t, TensorProtoSchema.field.dataLocation!);
    count++;
  };
  try {
    forEachTensor(m.graph, visit);
  } finally {
    for (const fd of files.values()) fs.closeSync(fd);
  }
  return count;
}
