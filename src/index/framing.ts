import { crc32 } from "./crc32.js";

/**
 * Frame layout shared by log segments and snapshot doc files:
 *
 *   u32 LE payload length | u32 LE CRC-32 of payload | payload
 *
 * A zero length is invalid on purpose: a file extended with zeros by a crash
 * (length 0, CRC 0 = CRC of nothing) would otherwise read as a valid empty frame.
 */
export const FRAME_HEADER_BYTES = 8;
/** Upper bound on one frame; a length above it is treated as corruption, not as a giant allocation. */
export const MAX_FRAME_BYTES = 1 << 30;

/** A buffer with room for the frame header; fill the payload from FRAME_HEADER_BYTES, then `sealFrame`. */
export function allocFrame(payloadBytes: number): Buffer {
  return Buffer.alloc(FRAME_HEADER_BYTES + payloadBytes);
}

/** Writes length and CRC into the header of a frame whose payload is complete. */
export function sealFrame(frame: Buffer): Buffer {
  const payload = frame.subarray(FRAME_HEADER_BYTES);
  frame.writeUInt32LE(payload.length, 0);
  frame.writeUInt32LE(crc32(payload), 4);
  return frame;
}

export function encodeFrame(payload: Uint8Array): Buffer {
  const frame = allocFrame(payload.length);
  frame.set(payload, FRAME_HEADER_BYTES);
  return sealFrame(frame);
}

export type FrameHeaderCheck = { ok: true; length: number } | { ok: false; reason: string };

/** Checks a frame header against the bytes left in the file, before reading the payload. */
export function checkFrameHeader(header: Buffer, bytesLeftAfterHeader: number): FrameHeaderCheck {
  const length = header.readUInt32LE(0);
  if (length === 0) return { ok: false, reason: "zero-length frame" };
  if (length > MAX_FRAME_BYTES) return { ok: false, reason: `frame length ${length} exceeds limit` };
  if (length > bytesLeftAfterHeader) {
    return { ok: false, reason: `truncated frame (needs ${length} bytes, ${bytesLeftAfterHeader} left)` };
  }
  return { ok: true, length };
}

export function payloadCrcMatches(header: Buffer, payload: Buffer): boolean {
  return header.readUInt32LE(4) === crc32(payload);
}
