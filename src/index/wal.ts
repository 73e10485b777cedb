import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { StorageError } from "./errors.js";
import { FRAME_HEADER_BYTES, allocFrame, scanFrames, sealFrame } from "./framing.js";
import { fsyncDir, writeFully } from "./fsutil.js";
import type { Logger } from "./types.js";
import type { ValidDocument } from "./validate.js";

/**
 * The write-ahead log of one collection: a sequence of segment files
 * `wal-<first LSN, 20 digits>.log`, each a 16-byte header followed by frames
 * (see framing.ts), one frame per upsert or delete call. Every record carries
 * its log sequence number (LSN); LSNs are consecutive across segments, which
 * is how recovery tells a lost record from the end of the log.
 *
 * A new segment starts at each snapshot, so a segment whose successor starts
 * at or below snapshot LSN + 1 is wholly covered by that snapshot and can go.
 */

const SEGMENT_MAGIC = Buffer.from("VECWAL01", "ascii");
export const SEGMENT_HEADER_BYTES = 16;
const SEGMENT_RE = /^wal-(\d{20})\.log$/;

export function segmentFileName(startLsn: number): string {
  return `wal-${String(startLsn).padStart(20, "0")}.log`;
}

// ---------------------------------------------------------------------------
// Records
//
// payload: u8 type | 3 bytes zero | u32 dimensions | u64 LSN | u32 JSON length
//          | JSON | zero padding to a multiple of 4 | float32 LE vectors
// The JSON carries ids, text and metadata; vectors go raw so that replay
// reproduces the exact float32 values the live write inserted.

const TYPE_UPSERT = 1;
const TYPE_DELETE = 2;
const FIXED_BYTES = 20;
const LSN_OFFSET = FRAME_HEADER_BYTES + 8;

export interface LoggedDoc {
  id: string;
  vector: Float32Array;
  text?: string;
  metadata?: Record<string, unknown>;
}

export type WalRecord =
  | { type: "upsert"; lsn: number; docs: LoggedDoc[] }
  | { type: "delete"; lsn: number; id: string };

function buildFrame(type: number, dimensions: number, json: string, vectors: readonly Float32Array[]): Buffer {
  const jsonBytes = Buffer.from(json, "utf8");
  const vecOffset = FIXED_BYTES + Math.ceil(jsonBytes.length / 4) * 4;
  const frame = allocFrame(vecOffset + vectors.length * dimensions * 4);
  const p = frame.subarray(FRAME_HEADER_BYTES);
  p.writeUInt8(type, 0);
  p.writeUInt32LE(dimensions, 4);
  p.writeUInt32LE(jsonBytes.length, 16);
  jsonBytes.copy(p, FIXED_BYTES);
  let off = vecOffset;
  for (const v of vectors) {
    Buffer.from(v.buffer, v.byteOffset, v.byteLength).copy(p, off);
    off += v.byteLength;
  }
  return frame;
}

/** An unsealed frame; `sealRecord` stamps the LSN once the record's place in the log is known. */
export function encodeUpsert(docs: readonly ValidDocument[], dimensions: number): Buffer {
  const meta = docs.map((d) => {
    const o: { i: string; t?: string; m?: Record<string, unknown> } = { i: d.id };
    if (d.text !== undefined) o.t = d.text;
    if (d.metadata !== undefined) o.m = d.metadata;
    return o;
  });
  return buildFrame(TYPE_UPSERT, dimensions, JSON.stringify(meta), docs.map((d) => d.vector));
}

export function encodeDelete(id: string): Buffer {
  return buildFrame(TYPE_DELETE, 0, JSON.stringify({ i: id }), []);
}

export function sealRecord(frame: Buffer, lsn: number): Buffer {
  frame.writeBigUInt64LE(BigInt(lsn), LSN_OFFSET);
  return sealFrame(frame);
}

export function recordPayload(frame: Buffer): Buffer {
  return frame.subarray(FRAME_HEADER_BYTES);
}

/** Decodes a CRC-checked payload; throws on anything malformed (treated like corruption). */
export function decodeRecord(p: Buffer, dimensions: number): WalRecord {
  if (p.length < FIXED_BYTES) throw new Error("record shorter than its fixed header");
  const type = p.readUInt8(0);
  const dims = p.readUInt32LE(4);
  const lsn = Number(p.readBigUInt64LE(8));
  const jsonLen = p.readUInt32LE(16);
  if (FIXED_BYTES + jsonLen > p.length) throw new Error("record JSON overruns the record");
  const json: unknown = JSON.parse(p.toString("utf8", FIXED_BYTES, FIXED_BYTES + jsonLen));
  if (type === TYPE_DELETE) {
    const id = (json as { i?: unknown }).i;
    if (typeof id !== "string") throw new Error("delete record without id");
    return { type: "delete", lsn, id };
  }
  if (type !== TYPE_UPSERT) throw new Error(`unknown record type ${type}`);
  if (dims !== dimensions) throw new Error(`record has ${dims} dimensions, collection has ${dimensions}`);
  if (!Array.isArray(json)) throw new Error("upsert record without document list");
  const vecOffset = FIXED_BYTES + Math.ceil(jsonLen / 4) * 4;
  if (vecOffset + json.length * dims * 4 !== p.length) throw new Error("upsert record size does not match its contents");
  const docs = json.map((raw: unknown, i): LoggedDoc => {
    const o = raw as { i?: unknown; t?: unknown; m?: unknown };
    if (typeof o.i !== "string") throw new Error("upsert record document without id");
    // Copy out of the (unaligned) payload; Float32Array views need 4-byte alignment.
    const start = vecOffset + i * dims * 4;
    const vector = new Float32Array(dims);
    Buffer.from(vector.buffer).set(p.subarray(start, start + dims * 4));
    const doc: LoggedDoc = { id: o.i, vector };
    if (typeof o.t === "string") doc.text = o.t;
    if (typeof o.m === "object" && o.m !== null) doc.metadata = o.m as Record<string, unknown>;
    return doc;
  });
  return { type: "upsert", lsn, docs };
}

// ---------------------------------------------------------------------------
// Writing

/** The segment being appended to. Not concurrency-safe: the collection's write lock serializes calls. */
export class WalWriter {
  private failed = false;

  private constructor(
    readonly dir: string,
    readonly startLsn: number,
    private fh: fsp.FileHandle,
    private size: number,
  ) {}

  get file(): string {
    return path.join(this.dir, segmentFileName(this.startLsn));
  }

  get bytes(): number {
    return this.size;
  }

  /** True when a failed append could not be undone: the segment may end in a partial frame. */
  get broken(): boolean {
    return this.failed;
  }

  /** Creates an empty segment; durable (file and directory entry fsynced) before it is used. */
  static async create(dir: string, startLsn: number): Promise<WalWriter> {
    const file = path.join(dir, segmentFileName(startLsn));
    const fh = await fsp.open(file, "w+");
    try {
      const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
      SEGMENT_MAGIC.copy(header, 0);
      header.writeBigUInt64LE(BigInt(startLsn), 8);
      await writeFully(fh, header, 0);
      await fh.sync();
      await fsyncDir(dir);
    } catch (err) {
      await fh.close();
      throw err;
    }
    return new WalWriter(dir, startLsn, fh, SEGMENT_HEADER_BYTES);
  }

  /** Continues a recovered segment at `size` (its valid end). */
  static async reopen(dir: string, startLsn: number, size: number): Promise<WalWriter> {
    const fh = await fsp.open(path.join(dir, segmentFileName(startLsn)), "r+");
    return new WalWriter(dir, startLsn, fh, size);
  }

  /**
   * Appends sealed frames and fsyncs. On failure the segment is cut back to
   * where it was, so a failed batch leaves no half-record behind for the next
   * one to follow; if even that fails the writer refuses all further appends.
   */
  async append(frames: readonly Buffer[]): Promise<void> {
    if (this.failed) throw new StorageError(`log segment ${this.file} is in an unknown state after an I/O error`);
    const before = this.size;
    const data = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
    try {
      await writeFully(this.fh, data, before);
      await this.fh.sync();
      this.size = before + data.length;
    } catch (err) {
      try {
        await this.fh.truncate(before);
        await this.fh.sync();
      } catch {
        this.failed = true;
      }
      throw new StorageError(`writing to log segment ${this.file} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

// ---------------------------------------------------------------------------
// Recovery

interface SegmentRef {
  startLsn: number;
  file: string;
}

export async function listSegments(dir: string): Promise<SegmentRef[]> {
  const out: SegmentRef[] = [];
  for (const name of await fsp.readdir(dir)) {
    const m = SEGMENT_RE.exec(name);
    if (m) out.push({ startLsn: Number(m[1]), file: path.join(dir, name) });
  }
  return out.sort((a, b) => a.startLsn - b.startLsn);
}

/** Deletes segments whose records all lie at or below `snapshotLsn`. Never the last segment. */
export async function removeCoveredSegments(dir: string, snapshotLsn: number, logger?: Logger): Promise<void> {
  const segs = await listSegments(dir);
  let removed = false;
  for (let i = 0; i + 1 < segs.length; i++) {
    if (segs[i + 1]!.startLsn <= snapshotLsn + 1) {
      await fsp.rm(segs[i]!.file, { force: true });
      logger?.debug({ file: segs[i]!.file, snapshotLsn }, "removed log segment covered by snapshot");
      removed = true;
    }
  }
  if (removed) await fsyncDir(dir);
}

export interface RecoveredLog {
  /** LSN of the last record applied (or the snapshot's LSN when there were none after it). */
  lastLsn: number;
  writer: WalWriter;
  /** Records and bytes replayed on top of the snapshot, to keep the snapshot policy honest. */
  replayedRecords: number;
  replayedBytes: number;
}

/**
 * Replays every record after `snapshotLsn` through `apply`, in LSN order.
 *
 * Replay stops at the first frame that is torn, fails its CRC, does not
 * decode or does not carry the next LSN; the segment is truncated there and
 * any later segments are set aside as `*.discarded` (applying them after a
 * hole would resurrect a state that never existed). This never throws for a
 * damaged tail; it throws only when records the snapshot does not cover are
 * missing from the start of the log, which no crash can cause.
 */
export async function recoverLog(
  dir: string,
  snapshotLsn: number,
  dimensions: number,
  apply: (record: WalRecord) => void,
  logger: Logger,
): Promise<RecoveredLog> {
  await removeCoveredSegments(dir, snapshotLsn, logger);
  const segs = await listSegments(dir);
  if (segs.length > 0 && segs[0]!.startLsn > snapshotLsn + 1) {
    throw new StorageError(
      `log of ${dir} starts at LSN ${segs[0]!.startLsn} but the snapshot ends at ${snapshotLsn}: records are missing`,
    );
  }

  let nextLsn = segs[0]?.startLsn ?? snapshotLsn + 1;
  let writerSeg: { startLsn: number; size: number } | undefined;
  let replayedRecords = 0;
  let replayedBytes = 0;
  let discardFrom = segs.length;

  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    const isLast = i === segs.length - 1;
    const fh = await fsp.open(seg.file, "r+");
    try {
      const { size } = await fh.stat();
      const hdr = Buffer.alloc(SEGMENT_HEADER_BYTES);
      const { bytesRead } = await fh.read(hdr, 0, SEGMENT_HEADER_BYTES, 0);
      const headerOk =
        bytesRead === SEGMENT_HEADER_BYTES &&
        hdr.subarray(0, 8).equals(SEGMENT_MAGIC) &&
        Number(hdr.readBigUInt64LE(8)) === seg.startLsn;
      if (!headerOk || seg.startLsn !== nextLsn) {
        // A segment torn while being created holds no acknowledged record.
        logger.warn(
          { file: seg.file, expectedLsn: nextLsn, headerOk },
          "log segment header is damaged or out of sequence; replay stops here",
        );
        discardFrom = i;
        break;
      }
      // A record that does not decode is damage; a record that decodes but
      // cannot be applied is not, and must not get the log truncated.
      let applyError: unknown;
      const stop = await scanFrames(fh, size, SEGMENT_HEADER_BYTES, (payload) => {
        const record = decodeRecord(payload, dimensions);
        if (record.lsn !== nextLsn) throw new Error(`expected LSN ${nextLsn}, found ${record.lsn}`);
        if (record.lsn > snapshotLsn) {
          try {
            apply(record);
          } catch (err) {
            applyError = err;
            throw err;
          }
          replayedRecords++;
          replayedBytes += FRAME_HEADER_BYTES + payload.length;
        }
        nextLsn++;
      });
      if (applyError !== undefined) {
        throw new StorageError(`replaying LSN ${nextLsn} of ${seg.file} failed: ${(applyError as Error).message}`, {
          cause: applyError,
        });
      }
      if (stop) {
        logger.warn(
          { file: seg.file, offset: stop.offset, droppedBytes: size - stop.offset, reason: stop.reason, lastLsn: nextLsn - 1 },
          "damaged log record; truncating the log there",
        );
        await fh.truncate(stop.offset);
        await fh.sync();
        writerSeg = { startLsn: seg.startLsn, size: stop.offset };
        discardFrom = i + 1;
        break;
      }
      if (isLast) writerSeg = { startLsn: seg.startLsn, size };
    } finally {
      await fh.close();
    }
  }

  for (const seg of segs.slice(discardFrom)) {
    const to = `${seg.file}.discarded`;
    await fsp.rename(seg.file, to);
    logger.warn({ file: to }, "log segment after the damaged point set aside, not replayed");
  }
  if (discardFrom < segs.length) await fsyncDir(dir);

  const lastLsn = Math.max(snapshotLsn, nextLsn - 1);
  // Reuse the tail segment only if appending to it keeps LSNs consecutive
  // (it would not if damage cut it short of the snapshot's LSN).
  const writer =
    writerSeg && nextLsn === lastLsn + 1
    ? await WalWriter.reopen(dir, writerSeg.startLsn, writerSeg.size)
    : await WalWriter.create(dir, lastLsn + 1);
  return { lastLsn, writer, replayedRecords, replayedBytes };
}
