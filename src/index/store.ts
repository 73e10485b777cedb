import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { StoreBackend } from './backend.js';
import { Collection, type CollectionOptions, writeSettingsFile } from './collection.js';
import { ConflictError, NotFoundError, StorageError, UnavailableError } from './errors.js';
import { fsyncDir, removeTree } from './fsutil.js';
import { DataDirLock } from './lock.js';
import { Mutex } from './mutex.js';
import type {
  CollectionInfo,
  CollectionSettings,
  Logger,
  SearchHit,
  SearchOptions,
  StoredDocument,
  StoreOptions,
  UpsertResult,
} from './types.js';
import { NAME_PATTERN, normalizeSettings, validateName } from './validate.js';

/**
 * The collections under one data directory:
 *
 *   <dataDir>/collections/<name>/          one per collection (see collection.ts)
 *   <dataDir>/collections/<name>.creating-* a create in progress (removed on open)
 *   <dataDir>/collections/<name>.dropping-* a drop in progress (removed on open)
 *
 * Creating writes the settings into a temp directory and renames it into
 * place, and dropping renames the directory away before deleting it, so a
 * crash never leaves a half-made or half-deleted collection under a valid
 * name. One process per data directory: `<dataDir>/LOCK` (lock.ts) is taken
 * before anything is read and released on close.
 *
 * A collection that cannot be opened (damaged settings, an unusable snapshot
 * the log no longer covers, missing records) does not stop the others: it is
 * listed as unavailable with the reason, its routes answer 503, and it can
 * be dropped. Its files are left untouched for the operator.
 */

const NOOP = (): void => undefined;
export const silentLogger: Logger = { debug: NOOP, info: NOOP, warn: NOOP, error: NOOP };

const DEFAULT_SNAPSHOT_RECORDS = 10_000;
const DEFAULT_SNAPSHOT_BYTES = 64 << 20;
const DEFAULT_SNAPSHOT_SECONDS = 300;
const DEFAULT_COMPACT_MIN_DELETED = 10_000;

/** The local implementation of `StoreBackend` (backend.ts): a WAL + snapshots per collection under a data directory. */
export class CollectionStore implements StoreBackend {
  private readonly collections = new Map<string, Collection>();
  /** Collections found on disk that could not be opened, with the reason. */
  private readonly unavailable = new Map<string, string>();
  /** Serializes create and drop, which change the set of collections and directories. */
  private readonly admin = new Mutex();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    readonly dataDir: string,
    private readonly root: string,
    private readonly opts: CollectionOptions,
    private readonly lock: DataDirLock,
  ) {}

  /** Opens (creating if needed) the data directory and loads every collection in it. */
  static async open(dataDir: string, options: StoreOptions = {}): Promise<CollectionStore> {
    const every = options.snapshotEvery ?? {};
    const opts: CollectionOptions = {
      logger: options.logger ?? silentLogger,
      snapshotEvery: {
        records: every.records ?? DEFAULT_SNAPSHOT_RECORDS,
        bytes: every.bytes ?? DEFAULT_SNAPSHOT_BYTES,
        seconds: every.seconds ?? DEFAULT_SNAPSHOT_SECONDS,
      },
      compactMinDeleted: options.compactMinDeleted ?? DEFAULT_COMPACT_MIN_DELETED,
      hooks: options.hooks ?? {},
    };
    const root = path.join(dataDir, 'collections');
    await fsp.mkdir(dataDir, { recursive: true });
    const lock = await DataDirLock.acquire(dataDir);
    try {
      await fsp.mkdir(root, { recursive: true });
      await fsyncDir(dataDir);
    } catch (err) {
      await lock.release();
      throw err;
    }
    const store = new CollectionStore(dataDir, root, opts, lock);

    for (const entry of await fsp.readdir(root, { withFileTypes: true })) {
      const full = path.join(root, entry.name);
      if (entry.isDirectory() && NAME_PATTERN.test(entry.name)) {
        try {
          store.collections.set(entry.name, await Collection.open(full, entry.name, opts));
        } catch (err) {
          const reason = (err as Error).message;
          store.unavailable.set(entry.name, reason);
          opts.logger.error(
            { collection: entry.name, err: reason },
            'collection could not be opened; it is unavailable (503) until repaired or dropped, the others serve',
          );
        }
      } else if (entry.isDirectory() && /^[A-Za-z0-9_-]{1,64}\.(creating|dropping)-/.test(entry.name)) {
        opts.logger.warn({ dir: entry.name }, 'removing leftover of an interrupted create/drop');
        await removeTree(full);
      } else {
        opts.logger.warn({ entry: entry.name }, 'ignoring unexpected entry in collections directory');
      }
    }

    const seconds = opts.snapshotEvery.seconds;
    if (seconds > 0) {
      const tick = Math.min(Math.max((seconds * 1000) / 4, 250), 30_000);
      store.timer = setInterval(() => {
        const now = Date.now();
        for (const c of store.collections.values()) c.maybeSnapshotByAge(now);
      }, tick);
      store.timer.unref();
    }
    return store;
  }

  private checkOpen(): void {
    if (this.closed) throw new StorageError('store is closed');
  }

  private collection(name: unknown): Collection {
    this.checkOpen();
    const valid = validateName(name);
    const c = this.collections.get(valid);
    if (!c) {
      const reason = this.unavailable.get(valid);
      if (reason !== undefined) throw new UnavailableError(`collection ${valid} is unavailable: ${reason}`);
      throw new NotFoundError(`collection ${valid} does not exist`);
    }
    return c;
  }

  /** Collections on disk that could not be opened, with why (for /ready and /info). */
  unavailableCollections(): { name: string; reason: string }[] {
    return [...this.unavailable].map(([name, reason]) => ({ name, reason })).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** What recovery found in collections that opened after repairing damage (for /info). */
  recoveries(): { name: string; recovery: NonNullable<Collection['recovery']> }[] {
    return [...this.collections.values()].filter((c) => c.recovery !== undefined).map((c) => ({ name: c.name, recovery: c.recovery! }));
  }

  /**
   * Creates a collection. Re-creating one with identical settings (after
   * defaults are filled in) is a no-op answering created: false; with other
   * settings it is a ConflictError.
   */
  async create(name: unknown, settings: unknown): Promise<{ created: boolean; settings: CollectionSettings }> {
    this.checkOpen();
    const valid = validateName(name);
    const normalized = normalizeSettings(settings);
    return this.admin.run(async () => {
      this.checkOpen();
      const broken = this.unavailable.get(valid);
      if (broken !== undefined) {
        throw new UnavailableError(`collection ${valid} exists but is unavailable (${broken}); drop it to create it anew`);
      }
      // Names are directories: on a case-insensitive filesystem `a` and `A` would be one directory.
      const folded = [...this.collections.keys(), ...this.unavailable.keys()].find(
        (n) => n !== valid && n.toLowerCase() === valid.toLowerCase(),
      );
      if (folded !== undefined) {
        throw new ConflictError(`collection ${folded} already exists; names must differ in more than letter case`);
      }
      const existing = this.collections.get(valid);
      if (existing) {
        if (!existing.sameSettings(normalized)) {
          throw new ConflictError(`collection ${valid} already exists with different settings`);
        }
        return { created: false, settings: existing.settings };
      }
      const dir = path.join(this.root, valid);
      const tmp = path.join(this.root, `${valid}.creating-${process.pid}-${Date.now()}`);
      await fsp.mkdir(tmp);
      await writeSettingsFile(tmp, valid, normalized);
      await fsp.rename(tmp, dir);
      await fsyncDir(this.root);
      const c = await Collection.open(dir, valid, this.opts);
      this.collections.set(valid, c);
      this.opts.logger.info({ collection: valid, settings: normalized }, 'collection created');
      return { created: true, settings: c.settings };
    });
  }

  /** All collections, sorted by name. */
  list(): CollectionInfo[] {
    this.checkOpen();
    return [...this.collections.values()].map((c) => c.info()).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  info(name: unknown): CollectionInfo {
    return this.collection(name).info();
  }

  /** Removes the collection and its directory. Writes already accepted finish first. */
  async drop(name: unknown): Promise<void> {
    this.checkOpen();
    const broken = validateName(name);
    if (this.unavailable.has(broken)) {
      await this.admin.run(async () => {
        if (!this.unavailable.delete(broken)) throw new NotFoundError(`collection ${broken} does not exist`);
        await this.removeDir(broken);
        this.opts.logger.warn({ collection: broken }, 'unavailable collection dropped');
      });
      return;
    }
    const c = this.collection(name);
    await this.admin.run(async () => {
      if (this.collections.get(c.name) !== c) throw new NotFoundError(`collection ${c.name} does not exist`);
      this.collections.delete(c.name);
      await c.close({ snapshot: false });
      await this.removeDir(c.name);
      this.opts.logger.info({ collection: c.name }, 'collection dropped');
    });
  }

  private async removeDir(name: string): Promise<void> {
    const dir = path.join(this.root, name);
    const doomed = path.join(this.root, `${name}.dropping-${process.pid}-${Date.now()}`);
    await fsp.rename(dir, doomed);
    await fsyncDir(this.root);
    await removeTree(doomed);
  }

  /** All or nothing per call; resolves once the batch is fsynced and visible to reads. */
  upsert(name: unknown, documents: unknown): Promise<UpsertResult> {
    try {
      return this.collection(name).upsert(documents);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  get(name: unknown, id: unknown): StoredDocument | undefined {
    return this.collection(name).get(id);
  }

  /** Resolves whether the document existed; durable before it resolves. */
  delete(name: unknown, id: unknown): Promise<boolean> {
    try {
      return this.collection(name).delete(id);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  search(name: unknown, vector: unknown, options: SearchOptions): SearchHit[] {
    return this.collection(name).search(vector, options);
  }

  /** Forces a snapshot of one collection, or of all. */
  async snapshot(name?: unknown): Promise<void> {
    if (name !== undefined) return this.collection(name).snapshot();
    this.checkOpen();
    for (const c of this.collections.values()) await c.snapshot();
  }

  /** Finishes pending writes, snapshots every collection (unless `snapshot: false`) and closes the logs. */
  async close(options: { snapshot?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    try {
      await this.admin.run(async () => {
        for (const c of this.collections.values()) await c.close(options);
      });
    } finally {
      await this.lock.release();
    }
  }
}
