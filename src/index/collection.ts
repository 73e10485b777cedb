import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { DocTable } from './doc-table.js';
import { StorageError, ValidationError } from './errors.js';
import { MAX_FRAME_BYTES } from './framing.js';
import { removeTree, writeFileAtomic } from './fsutil.js';
import { Mutex } from './mutex.js';
import { listSnapshots, loadSnapshot, removeStaleSnapshots, sealSnapshot, snapshotDirName, writeSnapshotData } from './snapshot.js';
import {
  applyDelete,
  applyUpsert,
  buildLexical,
  checkStorable,
  compactedState,
  compactionDue,
  type State,
  searchState,
  storedDocument,
} from './state.js';
import { VectorStorage } from './storage.js';
import type {
  CollectionInfo,
  CollectionSettings,
  Logger,
  SearchHit,
  SearchOptions,
  SnapshotPhase,
  SnapshotPolicy,
  StoredDocument,
  StoreHooks,
  UpsertResult,
} from './types.js';
import { deepFreeze, normalizeSettings, settingsEqual, validateDocuments, validateId } from './validate.js';
import { VectorIndex } from './vector-index.js';
import {
  decodeRecord,
  encodeDelete,
  encodeUpsert,
  listSegments,
  recordPayload,
  recoverLog,
  removeCoveredSegments,
  sealRecord,
  type WalRecord,
  WalWriter,
} from './wal.js';

/**
 * One collection: its settings, documents (DocTable), graph (VectorIndex),
 * log (WalWriter) and snapshots, under `<data dir>/collections/<name>/`.
 *
 * Write path: validate → encode one log record per call → queue. A single
 * flusher takes everything queued, assigns LSNs, appends it with ONE fsync
 * (group commit), then applies the records in LSN order by decoding them back
 * from the log bytes, so a live write and its replay after a crash go through
 * the very same code and produce the same state. Callers are resolved only
 * after their record is fsynced and applied; reads therefore never see a
 * write that is not durable.
 *
 * The write lock (a FIFO mutex) serializes the flusher, snapshot capture and
 * compaction: the three things that touch hnswlib's mutable state or need it
 * to hold still. Reads (get/search) take no lock.
 */

export interface CollectionOptions {
  logger: Logger;
  snapshotEvery: Required<SnapshotPolicy>;
  compactMinDeleted: number;
  hooks: StoreHooks;
}

export interface RecoveryReport {
  /** Damaged stretches found in the log. */
  damage: number;
  /** Acknowledged LSN ranges that could not be recovered. */
  lostLsns: [number, number][];
  damagedCopies: string[];
  /** The newest snapshot was unusable and the collection was rebuilt without it. */
  snapshotFallback: boolean;
}

interface PendingWrite {
  frame: Buffer;
  resolve: (result: UpsertResult | boolean) => void;
  reject: (err: unknown) => void;
}

const SETTINGS_FILE = 'settings.json';

export async function writeSettingsFile(dir: string, name: string, settings: CollectionSettings): Promise<void> {
  await writeFileAtomic(path.join(dir, SETTINGS_FILE), `${JSON.stringify({ format: 1, name, settings }, null, 2)}\n`);
}

async function readSettingsFile(dir: string): Promise<CollectionSettings> {
  let raw: { format?: unknown; settings?: unknown };
  try {
    raw = JSON.parse(await fsp.readFile(path.join(dir, SETTINGS_FILE), 'utf8')) as typeof raw;
  } catch (err) {
    throw new StorageError(`cannot read ${path.join(dir, SETTINGS_FILE)}: ${(err as Error).message}`, { cause: err });
  }
  if (raw.format !== 1) throw new StorageError(`${path.join(dir, SETTINGS_FILE)} has unknown format`);
  try {
    return normalizeSettings(raw.settings);
  } catch (err) {
    throw new StorageError(`${path.join(dir, SETTINGS_FILE)} is invalid: ${(err as Error).message}`, { cause: err });
  }
}

/** The one place state changes, for live writes and replay alike. */
function applyRecord(state: State, settings: CollectionSettings, record: WalRecord): UpsertResult | boolean {
  return record.type === 'delete' ? applyDelete(state, record.id) : applyUpsert(state, settings, record.docs);
}

export class Collection {
  private readonly lock = new Mutex();
  private queue: PendingWrite[] = [];
  private flushActive = false;
  private flushDone: Promise<void> = Promise.resolve();
  private snapshotRunning: Promise<void> | undefined;
  /** Set when memory may no longer match the log; writes fail until a restart recovers from disk. */
  private failure: StorageError | undefined;
  private closing = false;
  private closed = false;
  private closePromise: Promise<void> | undefined;
  private recordsSinceSnapshot: number;
  private bytesSinceSnapshot: number;
  private dirtySince: number | undefined;

  private constructor(
    readonly name: string,
    readonly settings: CollectionSettings,
    private readonly dir: string,
    private readonly opts: CollectionOptions,
    private state: State,
    private wal: WalWriter,
    /** Last LSN fsynced and applied. */
    private lastLsn: number,
    /** LSN of the newest durable snapshot (0: none). */
    private snapshotLsn: number,
    replayed: { records: number; bytes: number },
  ) {
    this.recordsSinceSnapshot = replayed.records;
    this.bytesSinceSnapshot = replayed.bytes;
    this.dirtySince = replayed.records > 0 ? Date.now() : undefined;
  }

  /**
   * Loads the newest usable snapshot and replays the log after it. A snapshot
   * that fails its checks is set aside when the log still reaches back past it
   * (to LSN 1 for a rebuild from nothing); otherwise opening fails and the
   * store marks this collection unavailable. After damage or a fallback the
   * recovered state is snapshotted at once, so the damaged files stop mattering.
   */
  static async open(dir: string, name: string, opts: CollectionOptions): Promise<Collection> {
    const started = Date.now();
    const settings = deepFreeze(await readSettingsFile(dir));
    const snapshots = await listSnapshots(dir);
    const segments = await listSegments(dir);
    const logStart = segments[0]?.startLsn;
    let index: VectorIndex | undefined;
    let docs: DocTable | undefined;
    let storage: VectorStorage | undefined;
    let snapshotLsn = 0;
    let fellBack = false;
    for (let i = snapshots.length - 1; i >= 0 && index === undefined; i--) {
      const snap = snapshots[i]!;
      try {
        const loaded = await loadSnapshot(snap.dir, settings);
        ({ index, docs, storage } = loaded);
        snapshotLsn = loaded.lsn;
      } catch (err) {
        // An older snapshot, or none, is only usable when the log covers everything after it.
        const older = i > 0 ? snapshots[i - 1]!.lsn : 0;
        if (logStart === undefined || logStart > older + 1) throw err;
        const aside = path.join(dir, `damaged-${path.basename(snap.dir)}-${Date.now()}`);
        await fsp.rename(snap.dir, aside);
        fellBack = true;
        opts.logger.error(
          { collection: name, err: (err as Error).message, setAside: aside, rebuildFromLsn: older + 1 },
          'snapshot unusable; rebuilding from an older snapshot or from nothing with the log, which still covers it',
        );
      }
    }
    index ??= VectorIndex.create(settings);
    docs ??= new DocTable();
    if (settings.storage) storage ??= new VectorStorage(settings.storage, settings.dimensions);
    const state: State = { index, docs, storage, lexical: buildLexical(settings, docs) };
    await removeStaleSnapshots(dir, snapshotLsn, opts.logger);
    const recovered = await recoverLog(
      dir,
      snapshotLsn,
      settings.dimensions,
      (record) => {
        applyRecord(state, settings, record);
      },
      opts.logger,
    );
    opts.logger.info(
      {
        collection: name,
        documents: docs.size,
        snapshotLsn,
        lastLsn: recovered.lastLsn,
        replayedRecords: recovered.replayedRecords,
        ms: Date.now() - started,
      },
      'collection opened',
    );
    const c = new Collection(name, settings, dir, opts, state, recovered.writer, recovered.lastLsn, snapshotLsn, {
      records: recovered.replayedRecords,
      bytes: recovered.replayedBytes,
    });
    if (fellBack || recovered.damage.length > 0 || recovered.lostLsns.length > 0) {
      c.recovery = {
        damage: recovered.damage.length,
        lostLsns: recovered.lostLsns,
        damagedCopies: recovered.damagedCopies,
        snapshotFallback: fellBack,
      };
      try {
        await c.snapshot();
      } catch (err) {
        await c.close({ snapshot: false });
        throw err;
      }
    }
    return c;
  }

  /** What recovery found at open, for operators (/info); undefined after a clean start. */
  recovery: RecoveryReport | undefined;

  /** Live documents. */
  get count(): number {
    return this.state.docs.size;
  }

  info(): CollectionInfo {
    return { name: this.name, settings: this.settings, count: this.state.docs.size };
  }

  sameSettings(other: CollectionSettings): boolean {
    return settingsEqual(this.settings, other);
  }

  // -------------------------------------------------------------------------
  // Writes

  private checkWritable(): void {
    if (this.closing) throw new StorageError(`collection ${this.name} is closed`);
    if (this.failure) throw this.failure;
  }

  async upsert(documents: unknown): Promise<UpsertResult> {
    this.checkWritable();
    const docs = validateDocuments(documents, this.settings.dimensions, this.settings.metric);
    checkStorable(this.settings, docs);
    if (docs.length === 0) return { inserted: 0, replaced: 0 };
    if (docs.length > this.state.docs.labelsLeft) throw new StorageError('label space exhausted; a compacting snapshot is needed');
    const frame = encodeUpsert(docs, this.settings.dimensions);
    if (frame.length > MAX_FRAME_BYTES) {
      throw new ValidationError(`batch encodes to ${frame.length} bytes, above the ${MAX_FRAME_BYTES}-byte limit; split it`);
    }
    return (await this.enqueue(frame)) as UpsertResult;
  }

  /** Resolves true when the document existed; durable before it resolves. */
  async delete(id: unknown): Promise<boolean> {
    const docId = validateId(id);
    this.checkWritable();
    // Nothing queued or in flight could create it, so the answer is settled: skip the log.
    if (!this.state.docs.get(docId) && this.queue.length === 0 && !this.flushActive) return false;
    return (await this.enqueue(encodeDelete(docId))) as boolean;
  }

  private enqueue(frame: Buffer): Promise<UpsertResult | boolean> {
    return new Promise((resolve, reject) => {
      this.queue.push({ frame, resolve, reject });
      if (!this.flushActive) {
        this.flushActive = true;
        this.flushDone = this.flushLoop();
      }
    });
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        await this.lock.run(() => this.flushBatch());
        this.maybeSnapshot();
      }
    } catch (err) {
      // flushBatch settles its own callers; anything escaping it is a bug that
      // leaves memory and log in an unknown relation.
      this.failure = new StorageError(`collection ${this.name}: write path failed: ${(err as Error).message}`, { cause: err });
      this.opts.logger.error({ collection: this.name, err }, 'write path failed');
      for (const w of this.queue.splice(0)) w.reject(this.failure);
    } finally {
      // Same synchronous continuation as the last queue check, so no enqueue can slip in between.
      this.flushActive = false;
    }
  }

  private async flushBatch(): Promise<void> {
    const batch = this.queue.splice(0);
    if (batch.length === 0) return;
    if (this.failure) {
      for (const w of batch) w.reject(this.failure);
      return;
    }
    let lsn = this.lastLsn;
    const frames = batch.map((w) => sealRecord(w.frame, ++lsn));
    try {
      await this.wal.append(frames);
    } catch (err) {
      // Normally the writer cut the segment back, so nothing of this batch
      // survives and its LSNs are free again. If it could not, the segment may
      // end in a partial frame, and recovery would stop there and set aside
      // anything logged after it (even in later segments): accept no more writes.
      this.opts.logger.error({ collection: this.name, err }, 'log append failed');
      const e = err instanceof StorageError ? err : new StorageError(String(err), { cause: err });
      if (this.wal.broken) this.failure = e;
      for (const w of batch) w.reject(e);
      return;
    }
    let bytes = 0;
    batch.forEach((w, i) => {
      const frame = frames[i]!;
      bytes += frame.length;
      if (this.failure) {
        w.reject(this.failure);
        return;
      }
      try {
        const record = decodeRecord(recordPayload(frame), this.settings.dimensions);
        const result = applyRecord(this.state, this.settings, record);
        this.lastLsn = record.lsn;
        w.resolve(result);
      } catch (err) {
        this.failure = new StorageError(
          `collection ${this.name}: applying logged record failed (${(err as Error).message}); ` +
            'writes are refused until a restart recovers from disk',
          { cause: err },
        );
        this.opts.logger.error({ collection: this.name, err }, 'apply failed after logging');
        w.reject(this.failure);
      }
    });
    this.recordsSinceSnapshot += batch.length;
    this.bytesSinceSnapshot += bytes;
    this.dirtySince ??= Date.now();
  }

  // -------------------------------------------------------------------------
  // Reads (no lock: hnswlib searches are safe next to a snapshot's writeIndex,
  // and every mutation happens synchronously between awaits)

  get(id: unknown): StoredDocument | undefined {
    const entry = this.state.docs.get(validateId(id));
    return entry ? storedDocument(this.state, entry) : undefined;
  }

  /** Dense, lexical or hybrid search (state.ts). */
  search(vector: unknown, options: SearchOptions): SearchHit[] {
    if (this.closed) throw new StorageError(`collection ${this.name} is closed`);
    return searchState(this.state, this.settings, this.name, vector, options);
  }

  // -------------------------------------------------------------------------
  // Snapshots

  private maybeSnapshot(): void {
    if (this.snapshotRunning || this.failure || this.closing) return;
    const p = this.opts.snapshotEvery;
    if (this.recordsSinceSnapshot >= p.records || this.bytesSinceSnapshot >= p.bytes) this.snapshotInBackground('log size');
  }

  /** Called by the store's timer. */
  maybeSnapshotByAge(now: number): void {
    if (this.snapshotRunning || this.failure || this.closing || this.dirtySince === undefined) return;
    const seconds = this.opts.snapshotEvery.seconds;
    if (seconds > 0 && now - this.dirtySince >= seconds * 1000) this.snapshotInBackground('age');
  }

  private snapshotInBackground(reason: string): void {
    this.snapshot().catch((err: unknown) => {
      this.opts.logger.error({ collection: this.name, err, reason }, 'snapshot failed; the log keeps everything');
    });
  }

  /** Writes a snapshot of everything applied so far (a no-op when nothing changed since the last one). */
  snapshot(): Promise<void> {
    const run = (this.snapshotRunning ?? Promise.resolve()).catch(() => undefined).then(() => this.writeSnapshot());
    this.snapshotRunning = run;
    run
      .finally(() => {
        if (this.snapshotRunning === run) this.snapshotRunning = undefined;
      })
      .catch(() => undefined);
    return run;
  }

  private hook(phase: SnapshotPhase): void {
    this.opts.hooks.snapshotPhase?.(phase, this.name);
  }

  private async writeSnapshot(): Promise<void> {
    if (this.failure) throw this.failure;
    const started = Date.now();
    // Capture under the lock: the graph and doc table must not change while
    // they are written, and the log must switch segments at exactly this LSN.
    const captured = await this.lock.run(async () => {
      if (this.lastLsn === this.snapshotLsn) return undefined;
      if (this.shouldCompact()) await this.compact();
      const lsn = this.lastLsn;
      const tmp = path.join(this.dir, `${snapshotDirName(lsn)}.tmp`);
      await removeTree(tmp);
      await fsp.mkdir(tmp);
      this.hook('begin');
      const cap = await writeSnapshotData(tmp, lsn, this.state.index, this.state.docs, this.state.storage);
      this.hook('index-written');
      if (this.wal.startLsn <= lsn) {
        const next = await WalWriter.create(this.dir, lsn + 1);
        const old = this.wal;
        this.wal = next;
        await old.close();
      }
      this.recordsSinceSnapshot = 0;
      this.bytesSinceSnapshot = 0;
      this.dirtySince = undefined;
      return cap;
    });
    if (!captured) return;
    this.hook('rotated');
    try {
      await sealSnapshot(this.dir, captured, this.settings, () => this.hook('synced'));
    } catch (err) {
      this.dirtySince ??= Date.now(); // let the timer retry
      await removeTree(captured.dir).catch(() => undefined);
      throw err;
    }
    this.snapshotLsn = captured.lsn;
    this.hook('renamed');
    // Only now, with the new snapshot durable, may what it replaces go.
    await removeCoveredSegments(this.dir, captured.lsn, this.opts.logger);
    await removeStaleSnapshots(this.dir, captured.lsn, this.opts.logger);
    this.hook('done');
    this.opts.logger.info(
      { collection: this.name, lsn: captured.lsn, documents: captured.docCount, ms: Date.now() - started },
      'snapshot written',
    );
  }

  private shouldCompact(): boolean {
    return compactionDue(this.state, this.opts.compactMinDeleted);
  }

  /** Rebuilds the graph without deleted elements and renumbers labels densely. Caller holds the lock. */
  private async compact(): Promise<void> {
    const started = Date.now();
    const before = this.state.index.elementCount;
    this.state = await compactedState(this.state, this.settings);
    this.opts.logger.info(
      { collection: this.name, elementsBefore: before, elementsAfter: this.state.index.elementCount, ms: Date.now() - started },
      'compacted index',
    );
  }

  // -------------------------------------------------------------------------

  /**
   * Finishes queued writes, writes a final snapshot (unless `snapshot: false`,
   * which leaves recovery to the log, as after a crash) and closes the log.
   */
  close(options: { snapshot?: boolean } = {}): Promise<void> {
    this.closePromise ??= this.doClose(options.snapshot !== false);
    return this.closePromise;
  }

  private async doClose(snapshot: boolean): Promise<void> {
    this.closing = true;
    while (this.flushActive) await this.flushDone;
    if (this.snapshotRunning) await this.snapshotRunning.catch(() => undefined);
    if (snapshot && !this.failure) {
      try {
        await this.snapshot();
      } catch (err) {
        this.opts.logger.error({ collection: this.name, err }, 'final snapshot failed; the log keeps everything');
      }
    }
    await this.lock.run(() => this.wal.close());
    this.closed = true;
  }
}
