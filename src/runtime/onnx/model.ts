/** ONNX model files: read (decodeModel over the file's bytes) and write (atomic, without concatenating the weights). */
import fs from 'node:fs';
import { decodeModel, encodeModelChunks, type ModelProto } from './proto.js';

/** Reads and decodes a model file; its weights stay views of the file's buffer. */
export function loadModel(file: string): ModelProto {
  return decodeModel(fs.readFileSync(file));
}

/** Writes a model chunk by chunk (no single buffer holding every weight); atomic (temp file + rename). Returns the size. */
export function saveModel(m: ModelProto, file: string): number {
  const chunks = encodeModelChunks(m);
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  let size = 0;
  try {
    for (const c of chunks) {
      let off = 0;
      while (off < c.byteLength) off += fs.writeSync(fd, c, off, c.byteLength - off);
      size += c.byteLength;
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  return size;
}
