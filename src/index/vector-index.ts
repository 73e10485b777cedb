import { promises as fsp } from 'node:fs';
import { crc32 } from 'node:zlib';
import hnswlib from 'hnswlib-node';
import { StorageError } from './errors.js';
import type { CollectionSettings, Metric } from './types.js';
import { graphDimensions } from './validate.js';

const { HierarchicalNSW } = hnswlib;
type Hnsw = InstanceType<typeof HierarchicalNSW>;

/**
 * Owns the hnswlib graph of one collection: the vectors, label capacity and
 * the conversion of hnswlib distances into higher-is-better scores. It knows
 * nothing about string ids or documents; labels are handed to it.
 */

/**
 * Default search breadth (ef = max(k, DEFAULT_EF)). Measured with
 * benchmarks/hnsw-recall.ts at m=16, ef_construction=200, 20k × 384-d: on
 * embedding-shaped data recall@10 is 0.988 at ef=16 and 1.0 from ef=64; real
 * embeddings have a higher intrinsic dimension than that synthetic set, so the
 * default keeps a 2× margin for ~0.05 ms more per query. (Uniformly random
 * vectors, with no structure to exploit, need ef ≥ 512 for 0.8.)
 */
export const DEFAULT_EF = 128;
const INITIAL_CAPACITY = 1024;
const RANDOM_SEED = 100;
/** hnswlib labels are uint32. */
export const MAX_LABEL = 0xffff_ffff;

export interface LabelScore {
  label: number;
  score: number;
}

export interface KnnRequest {
  k: number;
  ef: number | undefined;
  /** Candidate predicate (metadata filter); called for live labels only. */
  allow?: (label: number) => boolean;
  /** Live (non-deleted) labels: to tell a complete short answer from an unreachable part of the graph, and for the exact fallback. */
  liveCount: number;
  liveLabels: () => Iterable<number>;
}

/**
 * Cosine runs on hnswlib's inner-product space over vectors the store has
 * already normalized (hnswlib's own 'cosine' space would normalize them again).
 */
function spaceFor(metric: Metric): 'ip' | 'l2' {
  return metric === 'l2' ? 'l2' : 'ip';
}

export class VectorIndex {
  private deleted: number;

  private constructor(
    private readonly hnsw: Hnsw,
    private readonly settings: CollectionSettings,
    deleted: number,
  ) {
    this.deleted = deleted;
  }

  static create(settings: CollectionSettings, capacity = INITIAL_CAPACITY): VectorIndex {
    const hnsw = new HierarchicalNSW(spaceFor(settings.metric), graphDimensions(settings));
    // allowReplaceDeleted stays off: every upsert gets a fresh label, and
    // deleted slots are reclaimed by rebuilding (compaction), not in place.
    hnsw.initIndex(Math.max(1, capacity), settings.hnsw.m, settings.hnsw.ef_construction, RANDOM_SEED, false);
    return new VectorIndex(hnsw, settings, 0);
  }

  /** Loads a file written by `writeTo` and already checked against its manifest CRC. */
  static async load(settings: CollectionSettings, file: string, liveCount: number): Promise<VectorIndex> {
    const hnsw = new HierarchicalNSW(spaceFor(settings.metric), graphDimensions(settings));
    await hnsw.readIndex(file, false);
    const total = hnsw.getCurrentCount();
    if (total < liveCount) {
      throw new StorageError(`index file ${file} holds ${total} elements but the snapshot lists ${liveCount} documents`);
    }
    return new VectorIndex(hnsw, settings, total - liveCount);
  }

  /** Elements in the graph, deleted ones included (they still occupy capacity and are walked). */
  get elementCount(): number {
    return this.hnsw.getCurrentCount();
  }

  get deletedCount(): number {
    return this.deleted;
  }

  /** Grows capacity (doubling) so `extra` more points fit; called before a batch so the batch cannot fail halfway. */
  ensureCapacity(extra: number): void {
    const need = this.hnsw.getCurrentCount() + extra;
    const max = this.hnsw.getMaxElements();
    if (need <= max) return;
    let next = Math.max(max, INITIAL_CAPACITY);
    while (next < need) next *= 2;
    this.hnsw.resizeIndex(Math.min(next, MAX_LABEL));
  }

  add(vector: Float32Array, label: number): void {
    this.hnsw.addPoint(Array.from(vector), label);
  }

  remove(label: number): void {
    this.hnsw.markDelete(label);
    this.deleted++;
  }

  vector(label: number): number[] {
    return this.hnsw.getPoint(label);
  }

  private toScore(distance: number): number {
    // ip space: distance = 1 - a·b; l2 space: squared Euclidean distance.
    return this.settings.metric === 'l2' ? -Math.sqrt(Math.max(0, distance)) : 1 - distance;
  }

  /**
   * k nearest live labels, best first; exactly min(k, live matches) of them.
   *
   * The filter runs inside the graph walk (hnswlib calls it per candidate).
   * hnswlib's walk (searchBaseLayerST) only stops early once it holds `ef`
   * candidates that pass; until then it expands every neighbour it reaches.
   * So a short answer never means "ef was too small", and retrying with a
   * doubled ef would repeat the same exhaustive walk: it means some live
   * elements are unreachable from the entry point (it happens in degenerate
   * graphs, e.g. many duplicate vectors at small m). The walk counts the
   * candidates it checked; if that is every live element, the short answer is
   * complete; otherwise the remaining cases are settled by scoring every live
   * element exactly.
   */
  knn(query: Float32Array, req: KnnRequest): LabelScore[] {
    const want = Math.min(req.k, req.liveCount);
    if (want <= 0) return [];
    const ef = Math.min(Math.max(want, req.ef ?? Math.max(req.k, DEFAULT_EF)), Math.max(want, this.elementCount));
    let considered = 0;
    const allow = req.allow;
    const filter = allow
      ? (label: number): boolean => {
          considered++;
          return allow(label);
        }
      : undefined;
    this.hnsw.setEf(ef);
    const res = this.hnsw.searchKnn(Array.from(query), want, filter);
    if (res.neighbors.length >= want || (filter && considered >= req.liveCount)) {
      return res.neighbors.map((label, i) => ({ label, score: this.toScore(res.distances[i]!) }));
    }
    return this.exactKnn(query, want, req);
  }

  private exactKnn(query: Float32Array, want: number, req: KnnRequest): LabelScore[] {
    const scored: LabelScore[] = [];
    for (const label of req.liveLabels()) {
      if (req.allow && !req.allow(label)) continue;
      const v = this.hnsw.getPoint(label);
      let s = 0;
      if (this.settings.metric === 'l2') {
        for (let i = 0; i < v.length; i++) {
          const d = query[i]! - v[i]!;
          s += d * d;
        }
        scored.push({ label, score: -Math.sqrt(s) });
      } else {
        for (let i = 0; i < v.length; i++) s += query[i]! * v[i]!;
        scored.push({ label, score: s });
      }
    }
    scored.sort((a, b) => b.score - a.score);
    return scored.slice(0, want);
  }

  /**
   * Writes the graph on a libuv worker thread. The caller must hold the
   * collection's write lock: hnswlib's saveIndex is not safe against
   * concurrent addPoint/markDelete/resizeIndex (searches are fine).
   * The file is not fsynced here; `inspectIndexFile` then checks it is whole.
   */
  async writeTo(file: string): Promise<void> {
    await this.hnsw.writeIndex(file);
  }

  /** A fresh graph holding only the given live points, under their new labels; yields to the event loop as it goes. */
  async rebuilt(live: Iterable<[oldLabel: number, newLabel: number]>, liveCount: number): Promise<VectorIndex> {
    const next = VectorIndex.create(this.settings, Math.max(INITIAL_CAPACITY, liveCount));
    let n = 0;
    for (const [oldLabel, newLabel] of live) {
      next.hnsw.addPoint(this.hnsw.getPoint(oldLabel), newLabel);
      // Searches keep using the old graph meanwhile; only writers wait.
      if (++n % 500 === 0) await new Promise((r) => setImmediate(r));
    }
    return next;
  }
}

/*
 * hnswlib's saveIndex ignores write errors (a full disk leaves a short file
 * behind and reports success). Before a snapshot may replace the log, its
 * index file is walked against hnswlib's layout:
 *
 *   96-byte header (size_t offsetLevel0, max_elements, cur_element_count,
 *   size_data_per_element, label_offset, offsetData; int maxlevel; uint
 *   enterpoint; size_t maxM, maxM0, M; double mult; size_t ef_construction)
 *   | cur_element_count * size_data_per_element bytes of level-0 data
 *   | per element: u32 byte length + that many bytes of upper-level links.
 */
const HNSW_HEADER_BYTES = 96;
const READ_CHUNK = 4 << 20;

export interface IndexFileInfo {
  bytes: number;
  crc32: number;
  elementCount: number;
}

export async function inspectIndexFile(file: string, settings: CollectionSettings): Promise<IndexFileInfo> {
  const fh = await fsp.open(file, 'r');
  try {
    const { size } = await fh.stat();
    if (size < HNSW_HEADER_BYTES) throw new StorageError(`index file ${file} is truncated (${size} bytes)`);
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    let crc = 0;
    let pos = 0;
    let elementCount = 0;
    let nextLinkHeader = -1; // file offset of the next u32 link-list length
    let linksLeft = 0; // elements whose link-list length is still unread
    const straddle = Buffer.alloc(4);
    while (pos < size) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(READ_CHUNK, size - pos), pos);
      if (bytesRead <= 0) throw new StorageError(`short read on ${file}`);
      const chunk = buf.subarray(0, bytesRead);
      crc = crc32(chunk, crc);
      if (pos === 0) {
        if (bytesRead < HNSW_HEADER_BYTES) throw new StorageError(`short read on ${file}`);
        elementCount = Number(chunk.readBigUInt64LE(16));
        const sizePer = Number(chunk.readBigUInt64LE(24));
        const maxM0 = Number(chunk.readBigUInt64LE(64));
        const expectPer = maxM0 * 4 + 4 + graphDimensions(settings) * 4 + 8;
        if (maxM0 !== settings.hnsw.m * 2 || sizePer !== expectPer) {
          throw new StorageError(`index file ${file} does not match the collection settings`);
        }
        nextLinkHeader = HNSW_HEADER_BYTES + elementCount * sizePer;
        linksLeft = elementCount;
      }
      // Walk the link-list length prefixes that start inside this chunk.
      const end = pos + bytesRead;
      while (linksLeft > 0 && nextLinkHeader < end) {
        let len: number;
        if (nextLinkHeader + 4 <= end) {
          len = chunk.readUInt32LE(nextLinkHeader - pos);
        } else {
          // The prefix straddles the chunk boundary (rare): read it on its own.
          const r = await fh.read(straddle, 0, 4, nextLinkHeader);
          if (r.bytesRead < 4) break;
          len = straddle.readUInt32LE(0);
        }
        nextLinkHeader += 4 + len;
        linksLeft--;
      }
      pos = end;
    }
    if (linksLeft > 0 || nextLinkHeader !== size) {
      throw new StorageError(`index file ${file} is incomplete or malformed (layout ends at ${nextLinkHeader}, file has ${size} bytes)`);
    }
    return { bytes: size, crc32: crc, elementCount };
  } finally {
    await fh.close();
  }
}

/** CRC-32 of a whole file, streamed. */
export async function fileCrc32(file: string): Promise<{ bytes: number; crc32: number }> {
  const fh = await fsp.open(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    let crc = 0;
    let pos = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, READ_CHUNK, pos);
      if (bytesRead === 0) break;
      crc = crc32(buf.subarray(0, bytesRead), crc);
      pos += bytesRead;
    }
    return { bytes: pos, crc32: crc };
  } finally {
    await fh.close();
  }
}
