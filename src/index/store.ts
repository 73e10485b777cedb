import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { Collection, writeSettingsFile, type CollectionOptions } from "./collection.js";
import { ConflictError, NotFoundError, StorageError } from "./errors.js";
import { fsyncDir, removeTree } from "./fsutil.js";
import { Mutex } from "./mutex.js";
import type {
  CollectionInfo,
  CollectionSettings,
  Logger,
  SearchHit,
  SearchOptions,
  StoreOptions,
  StoredDocument,
  UpsertResult,
} from "./types.js";
import { NAME_PATTERN, normalizeSettings, validateName } from "./validate.js";

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
 * name. One process per data directory: nothing stops a second one, and two
 * would corrupt each other's logs.
 */

const NOOP = (): void => undefined;
export const silentLogger: Logger = { debug: NOOP, info: NOOP, warn: NOOP, error: NOOP };

const DEFAULT_SNAPSHOT_RECORDS = 10_000;
const DEFAULT_SNAPSHOT_BYTES = 64 << 20;
const DEFAULT_SNAPSHOT_SECONDS = 300;
const DEFAULT_COMPACT_MIN_DELETED = 10_000;

export class CollectionStore {
  private readonly collections = new Map<string, Collection>();
  /** Serializes create and drop, which change the set of collections and directories. */
  private readonly admin = new Mutex();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    readonly dataDir: string,
    private readonly root: string,
    private readonly opts: CollectionOptions,
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
    const root = path.join(dataDir, "collections");
    await fsp.mkdir(root, { recursive: true });
    await fsyncDir(dataDir);
    const store = new CollectionStore(dataDir, root, opts);

    for (const entry of await fsp.readdir(root, { withFileTypes: true })) {
      const full = path.join(root, entry.name);
      if (entry.isDirectory() && NAME_PATTERN.test(entry.name)) {
        try {
          store.collections.set(entry.name, await Collection.open(full, entry.name, opts));
        } catch (err) {
          await store.close({ snapshot: false });
          throw err;
        }
      } else if (entry.isDirectory() && /^[A-Za-z0-9_-]{1,64}\.(creating|dropping)-/.test(entry.name)) {
        opts.logger.warn({ dir: entry.name }, "removing leftover of an interrupted create/drop");
        await removeTree(full);
      } else {
        opts.logger.warn({ entry: entry.name }, "ignoring unexpected entry in collections directory");
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
    if (this.closed) throw new StorageError("store is closed");
  }

  private collection(name: unknown): Collection {
    this.checkOpen();
    const valid = validateName(name);
    const c = this.collections.get(valid);
    if (!c) throw new NotFoundError(`collection ${valid} does not exist`);
    return c;
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
      this.opts.logger.info({ collection: valid, settings: normalized }, "collection created");
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
    const c = this.collection(name);
    await this.admin.run(async () => {
      if (this.collections.get(c.name) !== c) throw new NotFoundError(`collection ${c.name} does not exist`);
      this.collections.delete(c.name);
      await c.close({ snapshot: false });
      const dir = path.join(this.root, c.name);
      const doomed = path.join(this.root, `${c.name}.dropping-${process.pid}-${Date.now()}`);
      await fsp.rename(dir, doomed);
      await fsyncDir(this.root);
      await removeTree(doomed);
      this.opts.logger.info({ collection: c.name }, "collection dropped");
    });
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
    await this.admin.run(async () => {
      for (const c of this.collections.values()) await c.close(options);
    });
  }
}
