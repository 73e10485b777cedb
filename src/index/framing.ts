import type { FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

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
  if (length === 0) return { ok: false, reason: 'zero-length frame' };
  if (length > MAX_FRAME_BYTES) return { ok: false, reason: `frame length ${length} exceeds limit` };
  if (length > bytesLeftAfterHeader) {
    return { ok: false, reason: `truncated frame (needs ${length} bytes, ${bytesLeftAfterHeader} left)` };
  }
  return { ok: true, length };
}

export function payloadCrcMatches(header: Buffer, payload: Buffer): boolean {
  return header.readUInt32LE(4) === crc32(payload);
}

export type ScanStop = { offset: number; reason: string } | undefined;

/**
 * Reads frames from `offset` to `size`, handing each CRC-valid payload to
 * `onPayload` (which throws to reject it). Returns where and why reading
 * stopped early, or undefined when the frames ended exactly at `size`.
 */
export async function scanFrames(fh: FileHandle, size: number, offset: number, onPayload: (payload: Buffer) => void): Promise<ScanStop> {
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  while (offset < size) {
    if (size - offset < FRAME_HEADER_BYTES) return { offset, reason: 'truncated frame header' };
    await fh.read(header, 0, FRAME_HEADER_BYTES, offset);
    const check = checkFrameHeader(header, size - offset - FRAME_HEADER_BYTES);
    if (!check.ok) return { offset, reason: check.reason };
    const payload = Buffer.allocUnsafe(check.length);
    const { bytesRead } = await fh.read(payload, 0, check.length, offset + FRAME_HEADER_BYTES);
    if (bytesRead !== check.length) return { offset, reason: 'short read' };
    if (!payloadCrcMatches(header, payload)) return { offset, reason: 'CRC mismatch' };
    try {
      onPayload(payload);
    } catch (err) {
      return { offset, reason: (err as Error).message };
    }
    offset += FRAME_HEADER_BYTES + check.length;
  }
  return undefined;
}
