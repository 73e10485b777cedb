import { StorageError } from './errors.js';
import { MAX_LABEL } from './vector-index.js';

/**
 * Owns the documents of one collection: string id ↔ hnswlib label, text and
 * metadata. Vectors live only in the VectorIndex. Labels are never reused
 * within a graph (a replaced or deleted document's label stays marked deleted
 * there), so `nextLabel` only grows until a compaction renumbers everything.
 */

export interface DocEntry {
  readonly id: string;
  readonly label: number;
  readonly text?: string;
  /** Deeply frozen. */
  readonly metadata?: Readonly<Record<string, unknown>>;
}

export class DocTable {
  private readonly byId = new Map<string, DocEntry>();
  private readonly byLabel = new Map<number, DocEntry>();

  constructor(private next = 0) {}

  get size(): number {
    return this.byId.size;
  }

  get nextLabel(): number {
    return this.next;
  }

  get(id: string): DocEntry | undefined {
    return this.byId.get(id);
  }

  getByLabel(label: number): DocEntry | undefined {
    return this.byLabel.get(label);
  }

  /** Labels left before the uint32 label space runs out. */
  get labelsLeft(): number {
    return MAX_LABEL - this.next;
  }

  allocateLabel(): number {
    if (this.next >= MAX_LABEL) throw new StorageError('label space exhausted; a compacting snapshot is needed');
    return this.next++;
  }

  /** Inserts or replaces by id; returns the replaced entry so the caller can retire its label. */
  put(entry: DocEntry): DocEntry | undefined {
    const prev = this.byId.get(entry.id);
    if (prev) this.byLabel.delete(prev.label);
    this.byId.set(entry.id, entry);
    this.byLabel.set(entry.label, entry);
    if (entry.label >= this.next) this.next = entry.label + 1;
    return prev;
  }

  remove(id: string): DocEntry | undefined {
    const prev = this.byId.get(id);
    if (!prev) return undefined;
    this.byId.delete(id);
    this.byLabel.delete(prev.label);
    return prev;
  }

  entries(): IterableIterator<DocEntry> {
    return this.byId.values();
  }

  labels(): IterableIterator<number> {
    return this.byLabel.keys();
  }
}
