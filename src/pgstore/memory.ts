import {
  applyDelete,
  applyUpsert,
  compactedState,
  compactionDue,
  emptyState,
  type State,
  searchState,
  storedDocument,
} from '../index/state.js';
import type { CollectionInfo, CollectionSettings, SearchHit, SearchOptions, StoredDocument } from '../index/types.js';
import { deepFreeze, type ValidDocument, validateId } from '../index/validate.js';

/** Compact once this many graph elements are deleted and they outnumber the live ones. */
const COMPACT_MIN_DELETED = 10_000;

/**
 * One collection as a replica holds it in memory: the same state a local
 * collection keeps (graph, documents, lexical index, funnel storage; see
 * index/state.ts), rebuilt from PostgreSQL and changed only by the follower
 * applying committed changes in sequence order. Nothing here is durable;
 * PostgreSQL is.
 */
export class ReplicaCollection {
  private state: State;
  private compacting = false;

  constructor(
    readonly name: string,
    readonly settings: CollectionSettings,
    /** The sequence number of the change that created it (a re-created collection has another). */
    readonly createdSeq: number,
  ) {
    deepFreeze(settings);
    this.state = emptyState(settings);
  }

  info(): CollectionInfo {
    return { name: this.name, settings: this.settings, count: this.state.docs.size };
  }

  /** Documents as the writer validated them: float32, normalized for cosine, full width. */
  upsert(documents: readonly ValidDocument[]): void {
    applyUpsert(this.state, this.settings, documents);
  }

  delete(ids: readonly string[]): void {
    for (const id of ids) applyDelete(this.state, id);
  }

  get(id: unknown): StoredDocument | undefined {
    const entry = this.state.docs.get(validateId(id));
    return entry ? storedDocument(this.state, entry) : undefined;
  }

  search(vector: unknown, options: SearchOptions): SearchHit[] {
    return searchState(this.state, this.settings, this.name, vector, options);
  }

  /**
   * Rebuilds the graph without its deleted elements when they dominate. The
   * follower applies no change while this runs, so the swap cannot lose one.
   */
  async maybeCompact(): Promise<boolean> {
    if (this.compacting || !compactionDue(this.state, COMPACT_MIN_DELETED)) return false;
    this.compacting = true;
    try {
      this.state = await compactedState(this.state, this.settings);
      return true;
    } finally {
      this.compacting = false;
    }
  }
}

/** float32 little-endian, the byte layout of `documents.vector`. */
export function encodeVector(v: Float32Array): Buffer {
  return Buffer.from(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength) as ArrayBuffer);
}

export function decodeVector(buf: Buffer, dimensions: number): Float32Array {
  if (buf.length !== dimensions * 4) throw new Error(`stored vector has ${buf.length} bytes, expected ${dimensions * 4}`);
  const out = new Float32Array(dimensions);
  new Uint8Array(out.buffer).set(buf);
  return out;
}
