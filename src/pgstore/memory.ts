import { DocTable, type DocEntry } from "../index/doc-table.js";
import { compileFilter } from "../index/filter.js";
import type { CollectionInfo, CollectionSettings, SearchHit, SearchOptions, StoredDocument } from "../index/types.js";
import { deepFreeze, toIndexVector, validateId, validateSearchOptions } from "../index/validate.js";
import { VectorIndex } from "../index/vector-index.js";

/** A document as read back from PostgreSQL, ready to apply. */
export interface ReplicaDocument {
  id: string;
  vector: Float32Array;
  text?: string;
  metadata?: Record<string, unknown>;
}

/** Compact once this many graph elements are deleted and they outnumber the live ones. */
const COMPACT_MIN_DELETED = 10_000;

/**
 * One collection as a replica holds it in memory: the graph and the document
 * table, rebuilt from PostgreSQL and changed only by the follower applying
 * committed changes in sequence order. Nothing here is durable; PostgreSQL is.
 */
export class ReplicaCollection {
  private index: VectorIndex;
  private docs = new DocTable();
  private compacting = false;

  constructor(
    readonly name: string,
    readonly settings: CollectionSettings,
    /** The sequence number of the change that created it (a re-created collection has another). */
    readonly createdSeq: number,
  ) {
    deepFreeze(settings);
    this.index = VectorIndex.create(settings);
  }

  get count(): number {
    return this.docs.size;
  }

  info(): CollectionInfo {
    return { name: this.name, settings: this.settings, count: this.docs.size };
  }

  upsert(documents: readonly ReplicaDocument[]): void {
    this.index.ensureCapacity(documents.length);
    for (const d of documents) {
      const label = this.docs.allocateLabel();
      this.index.add(d.vector, label);
      const entry: { id: string; label: number; text?: string; metadata?: Record<string, unknown> } = { id: d.id, label };
      if (d.text !== undefined) entry.text = d.text;
      if (d.metadata !== undefined) entry.metadata = deepFreeze(d.metadata);
      const prev = this.docs.put(entry);
      if (prev) this.index.remove(prev.label);
    }
  }

  delete(ids: readonly string[]): void {
    for (const id of ids) {
      const prev = this.docs.remove(id);
      if (prev) this.index.remove(prev.label);
    }
  }

  has(id: string): boolean {
    return this.docs.get(id) !== undefined;
  }

  get(id: unknown): StoredDocument | undefined {
    const entry = this.docs.get(validateId(id));
    return entry ? this.toStored(entry) : undefined;
  }

  private toStored(entry: DocEntry): StoredDocument {
    const doc: StoredDocument = { id: entry.id, vector: this.index.vector(entry.label) };
    if (entry.text !== undefined) doc.text = entry.text;
    if (entry.metadata !== undefined) doc.metadata = entry.metadata as Record<string, unknown>;
    return doc;
  }

  search(vector: unknown, options: SearchOptions): SearchHit[] {
    const { k, ef, include } = validateSearchOptions(options);
    const predicate = compileFilter(options.filter);
    const query = toIndexVector(vector, this.settings.dimensions, this.settings.metric, "vector");
    const docs = this.docs;
    const index = this.index;
    const allow = predicate
      ? (label: number): boolean => {
          const e = docs.getByLabel(label);
          return e !== undefined && predicate(e.metadata);
        }
      : undefined;
    const found = index.knn(query, { k, ef, allow, liveCount: docs.size, liveLabels: () => docs.labels() });
    const hits: SearchHit[] = [];
    for (const { label, score } of found) {
      const e = docs.getByLabel(label);
      if (!e) continue;
      const hit: SearchHit = { id: e.id, score };
      if (include.has("text") && e.text !== undefined) hit.text = e.text;
      if (include.has("metadata") && e.metadata !== undefined) hit.metadata = e.metadata as Record<string, unknown>;
      if (include.has("vector")) hit.vector = index.vector(label);
      hits.push(hit);
    }
    return hits;
  }

  /**
   * Rebuilds the graph without its deleted elements when they dominate. The
   * caller (the follower) applies no change while this runs, so the swap
   * cannot lose one.
   */
  async maybeCompact(): Promise<boolean> {
    const deleted = this.index.deletedCount;
    const due = (deleted >= COMPACT_MIN_DELETED && deleted > this.docs.size) || (this.docs.labelsLeft < 0x1000_0000 && deleted > 0);
    if (!due || this.compacting) return false;
    this.compacting = true;
    try {
      const next = new DocTable();
      const pairs: [number, number][] = [];
      for (const e of this.docs.entries()) {
        const label = next.allocateLabel();
        pairs.push([e.label, label]);
        next.put({ ...e, label });
      }
      this.index = await this.index.rebuilt(pairs, pairs.length);
      this.docs = next;
      return true;
    } finally {
      this.compacting = false;
    }
  }
}

/** float32 little-endian, the byte layout of `documents.vector`. */
export function encodeVector(v: Float32Array): Buffer {
  const buf = Buffer.allocUnsafe(v.length * 4);
  for (let i = 0; i < v.length; i++) buf.writeFloatLE(v[i]!, i * 4);
  return buf;
}

export function decodeVector(buf: Buffer, dimensions: number): Float32Array {
  if (buf.length !== dimensions * 4) throw new Error(`stored vector has ${buf.length} bytes, expected ${dimensions * 4}`);
  const out = new Float32Array(dimensions);
  for (let i = 0; i < dimensions; i++) out[i] = buf.readFloatLE(i * 4);
  return out;
}
