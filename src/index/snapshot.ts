import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { type DocEntry, DocTable } from './doc-table.js';
import { StorageError } from './errors.js';
import { encodeFrame, scanFrames } from './framing.js';
import { fsyncDir, fsyncFile, removeDurably, removeTree, writeFully } from './fsutil.js';
import { VectorStorage } from './storage.js';
import type { CollectionSettings, Logger } from './types.js';
import { deepFreeze } from './validate.js';
import { fileCrc32, inspectIndexFile, VectorIndex } from './vector-index.js';

/**
 * Snapshots of one collection. A snapshot is a directory
 * `snapshot-<LSN, 20 digits>/` holding the state after log record LSN:
 *
 *   index.hnsw     hnswlib's own file: the graph and every vector (the
 *                  vectors are stored once, here; get() reads them back with getPoint)
 *   docs.bin       frames (framing.ts) of JSON arrays of {i: id, l: label, t?: text, m?: metadata}
 *   vectors.bin    funnel collections only: the full vectors of labels [0, next_label)
 *                  in the collection's storage precision (storage.ts `chunks`)
 *   manifest.json  LSN, label counter, counts, and size + CRC-32 of the files
 *
 * It is built as `snapshot-<LSN>.tmp/`, fsynced file by file, and renamed into
 * place, so a directory under its final name is always complete; the
 * manifest's CRCs also guard the index file against bit rot before hnswlib
 * (which trusts its input) reads it.
 */

const SNAPSHOT_RE = /^snapshot-(\d{20})$/;
const INDEX_FILE = 'index.hnsw';
const DOCS_FILE = 'docs.bin';
const MANIFEST_FILE = 'manifest.json';
const VECTORS_FILE = 'vectors.bin';
const DOCS_FRAME_TARGET_BYTES = 1 << 20;

export function snapshotDirName(lsn: number): string {
  return `snapshot-${String(lsn).padStart(20, '0')}`;
}

interface FileSum {
  bytes: number;
  crc32: number;
}

export interface SnapshotManifest {
  format: 1;
  lsn: number;
  next_label: number;
  doc_count: number;
  element_count: number;
  files: { index: FileSum; docs: FileSum; vectors?: FileSum };
  created_at: string;
}

/** What `writeSnapshotData` captured; everything `sealSnapshot` needs without touching live state. */
export interface CapturedSnapshot {
  lsn: number;
  dir: string;
  nextLabel: number;
  docCount: number;
  elementCount: number;
  docs: FileSum;
  vectors?: FileSum;
}

/**
 * Writes index and docs into `tmpDir`. Must run under the collection's write
 * lock: it reads the graph from a worker thread and walks the doc table
 * across awaits, and both must hold still meanwhile. Nothing is fsynced yet.
 */
export async function writeSnapshotData(
  tmpDir: string,
  lsn: number,
  index: VectorIndex,
  docs: DocTable,
  storage?: VectorStorage,
): Promise<CapturedSnapshot> {
  await fsp.mkdir(tmpDir, { recursive: true });
  await index.writeTo(path.join(tmpDir, INDEX_FILE));
  let vectors: FileSum | undefined;
  if (storage) {
    const vfh = await fsp.open(path.join(tmpDir, VECTORS_FILE), 'w');
    try {
      let vpos = 0;
      let vcrc = 0;
      for (const chunk of storage.chunks(docs.nextLabel)) {
        await writeFully(vfh, chunk, vpos);
        vcrc = crc32(chunk, vcrc);
        vpos += chunk.length;
      }
      vectors = { bytes: vpos, crc32: vcrc };
    } finally {
      await vfh.close();
    }
  }

  const fh = await fsp.open(path.join(tmpDir, DOCS_FILE), 'w');
  let pos = 0;
  let crc = 0;
  try {
    let batch: string[] = [];
    let batchBytes = 0;
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const frame = encodeFrame(Buffer.from(`[${batch.join(',')}]`, 'utf8'));
      await writeFully(fh, frame, pos);
      crc = crc32(frame, crc);
      pos += frame.length;
      batch = [];
      batchBytes = 0;
    };
    for (const d of docs.entries()) {
      const o: { i: string; l: number; t?: string; m?: Readonly<Record<string, unknown>> } = { i: d.id, l: d.label };
      if (d.text !== undefined) o.t = d.text;
      if (d.metadata !== undefined) o.m = d.metadata;
      const s = JSON.stringify(o);
      batch.push(s);
      batchBytes += s.length;
      if (batchBytes >= DOCS_FRAME_TARGET_BYTES) await flush();
    }
    await flush();
  } finally {
    await fh.close();
  }
  return {
    lsn,
    dir: tmpDir,
    nextLabel: docs.nextLabel,
    docCount: docs.size,
    elementCount: index.elementCount,
    docs: { bytes: pos, crc32: crc },
    ...(vectors && { vectors }),
  };
}

/**
 * Makes a captured snapshot durable and visible: verify + fsync the files,
 * write the manifest, fsync, rename into place, fsync the collection dir.
 * Runs outside the write lock; it only touches files.
 */
export async function sealSnapshot(
  collectionDir: string,
  captured: CapturedSnapshot,
  settings: CollectionSettings,
  beforeRename: () => void,
): Promise<void> {
  const indexPath = path.join(captured.dir, INDEX_FILE);
  const docsPath = path.join(captured.dir, DOCS_FILE);
  const indexInfo = await inspectIndexFile(indexPath, settings);
  if (indexInfo.elementCount !== captured.elementCount) {
    throw new StorageError(`snapshot index file holds ${indexInfo.elementCount} elements, expected ${captured.elementCount}`);
  }
  await fsyncFile(indexPath);
  await fsyncFile(docsPath);
  if (captured.vectors) await fsyncFile(path.join(captured.dir, VECTORS_FILE));
  const manifest: SnapshotManifest = {
    format: 1,
    lsn: captured.lsn,
    next_label: captured.nextLabel,
    doc_count: captured.docCount,
    element_count: captured.elementCount,
    files: {
      index: { bytes: indexInfo.bytes, crc32: indexInfo.crc32 },
      docs: captured.docs,
      ...(captured.vectors && { vectors: captured.vectors }),
    },
    created_at: new Date().toISOString(),
  };
  const mfh = await fsp.open(path.join(captured.dir, MANIFEST_FILE), 'w');
  try {
    await mfh.writeFile(JSON.stringify(manifest, null, 2));
    await mfh.sync();
  } finally {
    await mfh.close();
  }
  await fsyncDir(captured.dir);
  beforeRename();
  const finalDir = path.join(collectionDir, snapshotDirName(captured.lsn));
  await removeTree(finalDir); // only ever a leftover of an identical snapshot
  await fsp.rename(captured.dir, finalDir);
  await fsyncDir(collectionDir);
}

export async function listSnapshots(collectionDir: string): Promise<{ lsn: number; dir: string }[]> {
  const out: { lsn: number; dir: string }[] = [];
  for (const name of await fsp.readdir(collectionDir)) {
    const m = SNAPSHOT_RE.exec(name);
    if (m) out.push({ lsn: Number(m[1]), dir: path.join(collectionDir, name) });
  }
  return out.sort((a, b) => a.lsn - b.lsn);
}

/** Removes snapshots older than `keepLsn` and unfinished `*.tmp` ones. */
export async function removeStaleSnapshots(collectionDir: string, keepLsn: number, logger: Logger): Promise<void> {
  const stale = (await fsp.readdir(collectionDir)).filter((name) => {
    const m = SNAPSHOT_RE.exec(name);
    return (m && Number(m[1]) < keepLsn) || (name.startsWith('snapshot-') && name.endsWith('.tmp'));
  });
  await removeDurably(
    collectionDir,
    stale.map((name) => path.join(collectionDir, name)),
  );
  if (stale.length > 0) logger.debug({ dirs: stale }, 'removed stale snapshots');
}

export interface LoadedSnapshot {
  lsn: number;
  index: VectorIndex;
  docs: DocTable;
  storage?: VectorStorage;
}

function corrupt(dir: string, what: string): never {
  throw new StorageError(`snapshot ${dir} is unusable: ${what}`);
}

/** Loads and cross-checks a snapshot; any inconsistency is a StorageError, never a crash in hnswlib. */
export async function loadSnapshot(dir: string, settings: CollectionSettings): Promise<LoadedSnapshot> {
  let manifest: SnapshotManifest;
  try {
    manifest = JSON.parse(await fsp.readFile(path.join(dir, MANIFEST_FILE), 'utf8')) as SnapshotManifest;
  } catch (err) {
    corrupt(dir, `manifest unreadable (${(err as Error).message})`);
  }
  if (manifest.format !== 1) corrupt(dir, `unknown format ${String(manifest.format)}`);

  const indexPath = path.join(dir, INDEX_FILE);
  const idxSum = await fileCrc32(indexPath);
  if (idxSum.bytes !== manifest.files.index.bytes || idxSum.crc32 !== manifest.files.index.crc32) {
    corrupt(dir, 'index file does not match its checksum');
  }

  const docs = new DocTable(manifest.next_label);
  const docsPath = path.join(dir, DOCS_FILE);
  const docsSum = await fileCrc32(docsPath);
  if (docsSum.bytes !== manifest.files.docs.bytes || docsSum.crc32 !== manifest.files.docs.crc32) {
    corrupt(dir, 'docs file does not match its checksum');
  }
  const fh = await fsp.open(docsPath, 'r');
  try {
    const { size } = await fh.stat();
    const stop = await scanFrames(fh, size, 0, (payload) => {
      const list = JSON.parse(payload.toString('utf8')) as { i: string; l: number; t?: string; m?: Record<string, unknown> }[];
      for (const o of list) {
        if (typeof o.i !== 'string' || !Number.isInteger(o.l) || o.l < 0 || o.l >= manifest.next_label) {
          throw new Error('malformed document entry');
        }
        if (docs.get(o.i) || docs.getByLabel(o.l)) throw new Error(`duplicate id or label for ${o.i}`);
        const entry: { id: string; label: number; text?: string; metadata?: Record<string, unknown> } = { id: o.i, label: o.l };
        if (o.t !== undefined) entry.text = o.t;
        if (o.m !== undefined) entry.metadata = deepFreeze(o.m);
        docs.put(entry as DocEntry);
      }
    });
    if (stop) corrupt(dir, `docs file damaged at byte ${stop.offset} (${stop.reason})`);
  } finally {
    await fh.close();
  }
  if (docs.size !== manifest.doc_count) corrupt(dir, `docs file lists ${docs.size} documents, manifest ${manifest.doc_count}`);

  let storage: VectorStorage | undefined;
  if (settings.storage) {
    const want = manifest.files.vectors;
    if (!want) corrupt(dir, 'the collection keeps full vectors but the snapshot has none');
    const expect = VectorStorage.fileBytes(settings.storage, settings.dimensions, manifest.next_label);
    const vfh = await fsp.open(path.join(dir, VECTORS_FILE), 'r');
    try {
      const { size } = await vfh.stat();
      if (size !== want.bytes || size !== expect) corrupt(dir, `vectors file has ${size} bytes, expected ${expect}`);
      // Read straight into the storage's arrays, checksumming as it goes.
      storage = new VectorStorage(settings.storage, settings.dimensions, manifest.next_label);
      let pos = 0;
      let crc = 0;
      for (const target of storage.targets(manifest.next_label)) {
        for (let off = 0; off < target.length; ) {
          const { bytesRead } = await vfh.read(target, off, Math.min(4 << 20, target.length - off), pos);
          if (bytesRead <= 0) corrupt(dir, 'vectors file is short');
          crc = crc32(target.subarray(off, off + bytesRead), crc);
          off += bytesRead;
          pos += bytesRead;
        }
      }
      if (crc !== want.crc32) corrupt(dir, 'vectors file does not match its checksum');
    } finally {
      await vfh.close();
    }
  }

  const index = await VectorIndex.load(settings, indexPath, docs.size);
  if (index.elementCount !== manifest.element_count) corrupt(dir, 'index element count differs from the manifest');
  return { lsn: manifest.lsn, index, docs, ...(storage && { storage }) };
}
