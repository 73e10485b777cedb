import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { StorageError } from './errors.js';
import { allocFrame, FRAME_HEADER_BYTES, payloadCrcMatches, scanFrames, sealFrame } from './framing.js';
import { fsyncDir, fsyncFile, removeDurably, writeFully } from './fsutil.js';
import type { Logger } from './types.js';
import type { ValidDocument } from './validate.js';

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

const SEGMENT_MAGIC = Buffer.from('VECWAL01', 'ascii');
export const SEGMENT_HEADER_BYTES = 16;
const SEGMENT_RE = /^wal-(\d{20})\.log$/;

export function segmentFileName(startLsn: number): string {
  return `wal-${String(startLsn).padStart(20, '0')}.log`;
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

export type WalRecord = { type: 'upsert'; lsn: number; docs: LoggedDoc[] } | { type: 'delete'; lsn: number; id: string };

function buildFrame(type: number, dimensions: number, json: string, vectors: readonly Float32Array[]): Buffer {
  const jsonBytes = Buffer.from(json, 'utf8');
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
  return buildFrame(
    TYPE_UPSERT,
    dimensions,
    JSON.stringify(meta),
    docs.map((d) => d.vector),
  );
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
  if (p.length < FIXED_BYTES) throw new Error('record shorter than its fixed header');
  const type = p.readUInt8(0);
  const dims = p.readUInt32LE(4);
  const lsn = Number(p.readBigUInt64LE(8));
  const jsonLen = p.readUInt32LE(16);
  if (FIXED_BYTES + jsonLen > p.length) throw new Error('record JSON overruns the record');
  const json: unknown = JSON.parse(p.toString('utf8', FIXED_BYTES, FIXED_BYTES + jsonLen));
  if (type === TYPE_DELETE) {
    const id = (json as { i?: unknown }).i;
    if (typeof id !== 'string') throw new Error('delete record without id');
    return { type: 'delete', lsn, id };
  }
  if (type !== TYPE_UPSERT) throw new Error(`unknown record type ${type}`);
  if (dims !== dimensions) throw new Error(`record has ${dims} dimensions, collection has ${dimensions}`);
  if (!Array.isArray(json)) throw new Error('upsert record without document list');
  const vecOffset = FIXED_BYTES + Math.ceil(jsonLen / 4) * 4;
  if (vecOffset + json.length * dims * 4 !== p.length) throw new Error('upsert record size does not match its contents');
  const docs = json.map((raw: unknown, i): LoggedDoc => {
    const o = raw as { i?: unknown; t?: unknown; m?: unknown };
    if (typeof o.i !== 'string') throw new Error('upsert record document without id');
    // Copy out of the (unaligned) payload; Float32Array views need 4-byte alignment.
    const start = vecOffset + i * dims * 4;
    const vector = new Float32Array(dims);
    Buffer.from(vector.buffer).set(p.subarray(start, start + dims * 4));
    const doc: LoggedDoc = { id: o.i, vector };
    if (typeof o.t === 'string') doc.text = o.t;
    if (typeof o.m === 'object' && o.m !== null) doc.metadata = o.m as Record<string, unknown>;
    return doc;
  });
  return { type: 'upsert', lsn, docs };
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
    const fh = await fsp.open(file, 'w+');
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
    const fh = await fsp.open(path.join(dir, segmentFileName(startLsn)), 'r+');
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
  // A segment is covered when the next one starts at or below the first record after the snapshot.
  const covered = segs.filter((_, i) => i + 1 < segs.length && segs[i + 1]!.startLsn <= snapshotLsn + 1).map((s) => s.file);
  await removeDurably(dir, covered);
  if (covered.length > 0) logger?.debug({ files: covered, snapshotLsn }, 'removed log segments covered by snapshot');
}

/** A stretch of a log segment that did not verify, followed by records that did. */
export interface LogDamage {
  file: string;
  /** Byte range that was skipped. */
  offset: number;
  bytes: number;
  reason: string;
}

export interface RecoveredLog {
  /** LSN of the last record applied (or the snapshot's LSN when there were none after it). */
  lastLsn: number;
  writer: WalWriter;
  /** Records and bytes replayed on top of the snapshot, to keep the snapshot policy honest. */
  replayedRecords: number;
  replayedBytes: number;
  /** Damage before the end of the log (not a torn tail); empty after a clean or merely torn log. */
  damage: LogDamage[];
  /** Acknowledged records (LSN ranges above the snapshot) that damage made unrecoverable. */
  lostLsns: [number, number][];
  /** Copies of the damaged segments, kept as found. */
  damagedCopies: string[];
}

/** Smallest record: fixed header plus `[]`, in a frame. */
const MIN_RECORD_BYTES = FRAME_HEADER_BYTES + FIXED_BYTES;

/**
 * Looks for the next frame after damage: the first offset at or after `from`
 * holding a frame whose CRC verifies and whose record decodes with an LSN at
 * least `minLsn`. The cheap checks (length, type byte, zero padding, a
 * plausible LSN) come first so that random bytes rarely reach the CRC.
 */
async function findNextFrame(
  fh: fsp.FileHandle,
  size: number,
  from: number,
  minLsn: number,
  dimensions: number,
): Promise<number | undefined> {
  if (size - from < MIN_RECORD_BYTES) return undefined;
  const buf = Buffer.allocUnsafe(size - from);
  const { bytesRead } = await fh.read(buf, 0, buf.length, from);
  const maxLsn = minLsn + Math.ceil(size / MIN_RECORD_BYTES);
  for (let o = 0; o + MIN_RECORD_BYTES <= bytesRead; o++) {
    const length = buf.readUInt32LE(o);
    if (length < FIXED_BYTES || length > bytesRead - o - FRAME_HEADER_BYTES) continue;
    const p = o + FRAME_HEADER_BYTES;
    const type = buf[p];
    if ((type !== TYPE_UPSERT && type !== TYPE_DELETE) || buf[p + 1] !== 0 || buf[p + 2] !== 0 || buf[p + 3] !== 0) continue;
    const lsn = Number(buf.readBigUInt64LE(p + 8));
    if (lsn < minLsn || lsn > maxLsn) continue;
    const payload = buf.subarray(p, p + length);
    if (!payloadCrcMatches(buf.subarray(o, p), payload)) continue;
    try {
      decodeRecord(payload, dimensions);
    } catch {
      continue;
    }
    return from + o;
  }
  return undefined;
}

/**
 * Replays every record after `snapshotLsn` through `apply`, in LSN order.
 *
 * A crash can only tear the end of the log: the last, partly written frame of
 * the last segment, after which nothing verifies. That tail is truncated with
 * a warning. Anything else that does not verify (a flipped byte in the
 * middle, a cut-short older segment) is damage: replay skips to the next frame
 * that verifies and carries a later LSN, applies every record that verifies,
 * keeps a copy of each damaged segment beside it, and reports the LSN ranges
 * lost (`lostLsns`) so that the caller can log them and re-snapshot. Frames
 * that verify are never discarded.
 *
 * Throws only when records the snapshot does not cover are missing from the
 * start of the log (no crash can cause that) or a verified record cannot be
 * applied.
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
    throw new StorageError(`log of ${dir} starts at LSN ${segs[0]!.startLsn} but the snapshot ends at ${snapshotLsn}: records are missing`);
  }

  let nextLsn = segs[0]?.startLsn ?? snapshotLsn + 1;
  let replayedRecords = 0;
  let replayedBytes = 0;
  const damage: LogDamage[] = [];
  const lostLsns: [number, number][] = [];
  const damagedFiles = new Set<string>();
  /** The last segment, to append to when it is clean. */
  let tail: { startLsn: number; size: number } | undefined;
  const copies = new Map<string, string>();
  /** Copies a damaged segment aside once (`<file>.damaged-<time>`), fsynced, before anything changes it. */
  const keepCopy = async (file: string): Promise<string> => {
    let to = copies.get(file);
    if (to === undefined) {
      to = `${file}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      await fsp.copyFile(file, to);
      await fsyncFile(to);
      copies.set(file, to);
    }
    return to;
  };
  const noteGap = (upTo: number): void => {
    // Records up to `upTo` never verified; those the snapshot covers are not lost.
    const from = Math.max(nextLsn, snapshotLsn + 1);
    if (upTo >= from) lostLsns.push([from, upTo]);
  };

  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    const isLast = i === segs.length - 1;
    const fh = await fsp.open(seg.file, 'r+');
    try {
      const { size } = await fh.stat();
      const hdr = Buffer.alloc(SEGMENT_HEADER_BYTES);
      const { bytesRead } = await fh.read(hdr, 0, SEGMENT_HEADER_BYTES, 0);
      const headerOk =
        bytesRead === SEGMENT_HEADER_BYTES && hdr.subarray(0, 8).equals(SEGMENT_MAGIC) && Number(hdr.readBigUInt64LE(8)) === seg.startLsn;
      if (!headerOk && isLast && size <= SEGMENT_HEADER_BYTES) {
        // Torn while being created: it never held a record. A fresh one replaces it.
        logger.warn({ file: seg.file }, 'log segment torn while being created (it held no record); replacing it');
        await fsp.rm(seg.file, { force: true });
        break;
      }
      if (!headerOk) {
        damage.push({ file: seg.file, offset: 0, bytes: SEGMENT_HEADER_BYTES, reason: 'damaged segment header' });
        damagedFiles.add(seg.file);
      }
      if (seg.startLsn > nextLsn) {
        noteGap(seg.startLsn - 1);
        nextLsn = seg.startLsn;
        damagedFiles.add(segs[i - 1]!.file);
      }
      // A record that does not verify is damage; a record that verifies but
      // cannot be applied is not, and must not get the log cut.
      let applyError: unknown;
      let offset = SEGMENT_HEADER_BYTES;
      let validEnd = size;
      for (;;) {
        const stop = await scanFrames(fh, size, offset, (payload) => {
          const record = decodeRecord(payload, dimensions);
          if (record.lsn < nextLsn) throw new Error(`expected LSN ${nextLsn}, found ${record.lsn}`);
          if (record.lsn > nextLsn) noteGap(record.lsn - 1);
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
          nextLsn = record.lsn + 1;
        });
        if (applyError !== undefined) {
          throw new StorageError(`replaying LSN ${nextLsn} of ${seg.file} failed: ${(applyError as Error).message}`, {
            cause: applyError,
          });
        }
        if (!stop) break;
        const resume = await findNextFrame(fh, size, stop.offset + 1, nextLsn, dimensions);
        if (resume !== undefined) {
          damage.push({ file: seg.file, offset: stop.offset, bytes: resume - stop.offset, reason: stop.reason });
          damagedFiles.add(seg.file);
          offset = resume;
          continue;
        }
        if (isLast) {
          // Nothing verifies after it: the torn tail of an interrupted append.
          logger.warn(
            { file: seg.file, offset: stop.offset, droppedBytes: size - stop.offset, reason: stop.reason, lastLsn: nextLsn - 1 },
            'damaged log record at the end of the log (torn write); truncating the log there',
          );
          validEnd = stop.offset;
        } else {
          damage.push({ file: seg.file, offset: stop.offset, bytes: size - stop.offset, reason: stop.reason });
          damagedFiles.add(seg.file);
        }
        break;
      }
      if (isLast) {
        // Keep the damaged file as found before cutting its tail.
        if (damagedFiles.has(seg.file) || validEnd < size) {
          if (damagedFiles.has(seg.file)) await keepCopy(seg.file);
          if (validEnd < size) {
            await fh.truncate(validEnd);
            await fh.sync();
          }
        }
        if (headerOk) tail = { startLsn: seg.startLsn, size: validEnd };
      }
    } finally {
      await fh.close();
    }
  }

  const damagedCopies: string[] = [];
  for (const file of damagedFiles) damagedCopies.push(await keepCopy(file));
  if (damagedCopies.length > 0) await fsyncDir(dir);
  if (damage.length > 0 || lostLsns.length > 0) {
    const lostRecords = lostLsns.reduce((n, [a, b]) => n + b - a + 1, 0);
    logger.error(
      { dir, damage, lostLsns, lostRecords, damagedCopies },
      lostRecords > 0
        ? `damaged log: ${lostRecords} acknowledged record(s) could not be recovered (LSNs ${lostLsns.map(([a, b]) => (a === b ? a : `${a}-${b}`)).join(', ')}); every record that verifies was replayed, and the damaged segments are kept as *.damaged-*`
        : 'damaged log: no acknowledged record was lost (the damage lies in records the snapshot covers); the damaged segments are kept as *.damaged-*',
    );
  }

  const lastLsn = Math.max(snapshotLsn, nextLsn - 1);
  // Append to the tail segment only when it is clean and appending keeps LSNs
  // consecutive; after damage a fresh segment starts and the caller re-snapshots.
  // (A segment named lastLsn + 1 can only be one without a verified record: recreating it is safe.)
  const writer =
    tail && damage.length === 0 && lostLsns.length === 0 && nextLsn === lastLsn + 1
      ? await WalWriter.reopen(dir, tail.startLsn, tail.size)
      : await WalWriter.create(dir, lastLsn + 1);
  return { lastLsn, writer, replayedRecords, replayedBytes, damage, lostLsns, damagedCopies };
}
