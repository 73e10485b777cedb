/** Vectors as response text: far cheaper than a generic serializer on big float arrays. */
import { endianness } from 'node:os';

type Vector = Float32Array | Int8Array | Uint8Array;

export function vectorJson(v: Vector): string {
  return `[${Array.prototype.join.call(v, ',')}]`;
}

export function vectorsJson(vectors: readonly Vector[]): string {
  return `[${vectors.map(vectorJson).join(',')}]`;
}

const LITTLE_ENDIAN = endianness() === 'LE';

/** OpenAI's base64 encoding: the vector's float32 values, little-endian. */
export function base64Vector(v: Float32Array): string {
  const bytes = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return (LITTLE_ENDIAN ? bytes : Buffer.from(bytes).swap32()).toString('base64');
}
