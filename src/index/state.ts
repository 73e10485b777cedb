import { type DocEntry, DocTable } from './doc-table.js';
import { ValidationError } from './errors.js';
import { compileFilter } from './filter.js';
import type { Ranked } from './fusion.js';
import { LexicalIndex } from './lexical.js';
import { defaultRescore, finishSearch, searchDepths } from './search.js';
import { prefixVector, storableError, VectorStorage } from './storage.js';
import type { CollectionSettings, SearchHit, SearchOptions, StoredDocument, UpsertResult } from './types.js';
import { deepFreeze, toIndexVector, type ValidDocument, validateSearchOptions } from './validate.js';
import { VectorIndex } from './vector-index.js';

/**
 * A collection's in-memory state and the only code that changes or reads it:
 * the durable local collection (collection.ts, fed by its WAL) and a replica
 * over PostgreSQL (pgstore/, fed by the change sequence) both hold one, so a
 * write means the same thing and a search answers the same way in either.
 */

/**
 * Everything a write changes, swapped as a whole by compaction. The graph,
 * the doc table, the lexical index and the full-vector storage change
 * together in one synchronous step, so a write is in all of them or in none.
 */
export interface State {
  index: VectorIndex;
  docs: DocTable;
  /** BM25 over document texts (collections created with `lexical`); derived from `docs`. */
  lexical: LexicalIndex | undefined;
  /** Full vectors (funnel collections); the graph then holds their prefixes. */
  storage: VectorStorage | undefined;
}

export function emptyState(settings: CollectionSettings): State {
  const docs = new DocTable();
  return {
    index: VectorIndex.create(settings),
    docs,
    lexical: buildLexical(settings, docs),
    storage: settings.storage ? new VectorStorage(settings.storage, settings.dimensions) : undefined,
  };
}

export function buildLexical(settings: CollectionSettings, docs: DocTable): LexicalIndex | undefined {
  if (!settings.lexical) return undefined;
  const lexical = new LexicalIndex(settings.lexical);
  for (const e of docs.entries()) if (e.text !== undefined) lexical.add(e.label, e.text);
  return lexical;
}

/** 422 for a vector the collection's storage precision cannot hold (float16 range). */
export function checkStorable(settings: CollectionSettings, docs: readonly ValidDocument[]): void {
  if (!settings.storage) return;
  docs.forEach((d, i) => {
    const why = storableError(d.vector, settings.storage!);
    if (why) throw new ValidationError(`documents[${i}].vector: ${why}; this collection stores ${settings.storage}`);
  });
}

function retire(state: State, prev: DocEntry): void {
  state.index.remove(prev.label);
  if (prev.text !== undefined) state.lexical?.remove(prev.label, prev.text);
}

export function applyDelete(state: State, id: string): boolean {
  const prev = state.docs.remove(id);
  if (prev) retire(state, prev);
  return prev !== undefined;
}

/** Vectors are validated (float32, normalized for cosine). */
export function applyUpsert(state: State, settings: CollectionSettings, documents: readonly ValidDocument[]): UpsertResult {
  const { index, docs, lexical, storage } = state;
  // Grow first so a batch cannot stop halfway for lack of room.
  index.ensureCapacity(documents.length);
  storage?.ensureCapacity(docs.nextLabel + documents.length);
  const prefix = settings.index_dimensions;
  let inserted = 0;
  let replaced = 0;
  for (const d of documents) {
    const label = docs.allocateLabel();
    if (storage && prefix !== undefined) {
      index.add(prefixVector(d.vector, prefix, settings.metric), label);
      storage.set(label, d.vector);
    } else {
      index.add(d.vector, label);
    }
    const entry: { id: string; label: number; text?: string; metadata?: Record<string, unknown> } = { id: d.id, label };
    if (d.text !== undefined) {
      entry.text = d.text;
      lexical?.add(label, d.text);
    }
    if (d.metadata !== undefined) entry.metadata = deepFreeze(d.metadata);
    const prev = docs.put(entry);
    if (prev) {
      retire(state, prev);
      replaced++;
    } else {
      inserted++;
    }
  }
  return { inserted, replaced };
}

/** The full-width vector as kept: from storage (dequantized) in a funnel collection, else from the graph. */
function vectorOf(state: State, label: number): number[] {
  return state.storage ? Array.from(state.storage.get(label)) : state.index.vector(label);
}

export function storedDocument(state: State, entry: DocEntry): StoredDocument {
  const doc: StoredDocument = { id: entry.id, vector: vectorOf(state, entry.label) };
  if (entry.text !== undefined) doc.text = entry.text;
  if (entry.metadata !== undefined) doc.metadata = entry.metadata as Record<string, unknown>;
  return doc;
}

/**
 * Dense, lexical or hybrid search (see search.ts for the plan and fusion).
 * The dense side of a funnel collection walks the prefix graph for
 * `rescore` candidates and reorders them by their full stored vectors.
 * Synchronous: a compaction may swap the caller's state, never mid-search.
 */
export function searchState(
  state: State,
  settings: CollectionSettings,
  name: string,
  vector: unknown,
  options: SearchOptions,
): SearchHit[] {
  const o = validateSearchOptions(options);
  if (o.mode !== 'dense' && !settings.lexical) {
    throw new ValidationError(`mode "${o.mode}" needs a lexical index; collection ${name} was created without "lexical"`);
  }
  if (o.rescore !== undefined && settings.index_dimensions === undefined) {
    throw new ValidationError(`rescore applies to collections with index_dimensions; collection ${name} has none`);
  }
  const predicate = compileFilter(options.filter);
  const depths = searchDepths(o);
  const query = depths.dense > 0 ? toIndexVector(vector, settings.dimensions, settings.metric, 'vector') : undefined;
  const { docs } = state;
  const allow = predicate
    ? (label: number): boolean => {
        const e = docs.getByLabel(label);
        return e !== undefined && predicate(e.metadata);
      }
    : undefined;
  const dense = query ? denseSearch(state, settings, query, depths.dense, o.ef, o.rescore, allow) : [];
  const lexical: Ranked<number>[] = depths.lexical
    ? state.lexical!.search(o.text!, depths.lexical, allow).map((h) => ({ key: h.label, score: h.score }))
    : [];
  const hits: SearchHit[] = [];
  for (const f of finishSearch(o, dense, lexical)) {
    const e = docs.getByLabel(f.key);
    if (!e) continue;
    const hit: SearchHit = { id: e.id, score: f.score };
    if (f.dense_score !== undefined) hit.dense_score = f.dense_score;
    if (f.lexical_score !== undefined) hit.lexical_score = f.lexical_score;
    if (o.include.has('text') && e.text !== undefined) hit.text = e.text;
    if (o.include.has('metadata') && e.metadata !== undefined) hit.metadata = e.metadata as Record<string, unknown>;
    if (o.include.has('vector')) hit.vector = vectorOf(state, f.key);
    hits.push(hit);
  }
  return hits;
}

function denseSearch(
  state: State,
  settings: CollectionSettings,
  query: Float32Array,
  depth: number,
  ef: number | undefined,
  rescore: number | undefined,
  allow: ((label: number) => boolean) | undefined,
): Ranked<number>[] {
  const { index, docs, storage } = state;
  const live = { liveCount: docs.size, liveLabels: () => docs.labels() };
  const prefix = settings.index_dimensions;
  if (!storage || prefix === undefined) {
    return index.knn(query, { k: depth, ef, allow, ...live }).map(({ label, score }) => ({ key: label, score }));
  }
  const candidates = Math.max(rescore ?? defaultRescore(depth), depth);
  const found = index.knn(prefixVector(query, prefix, settings.metric), { k: candidates, ef, allow, ...live });
  const rescored = found.map(({ label }) => ({ key: label, score: storage.score(label, query, settings.metric) }));
  rescored.sort((a, b) => b.score - a.score);
  return rescored.length > depth ? rescored.slice(0, depth) : rescored;
}

/** Whether deleted graph elements dominate enough (or labels run out) to rebuild. */
export function compactionDue(state: State, minDeleted: number): boolean {
  const deleted = state.index.deletedCount;
  const labelsRunningOut = state.docs.labelsLeft < 0x1000_0000;
  return (deleted >= minDeleted && deleted > state.docs.size) || (labelsRunningOut && deleted > 0);
}

/** A new state without deleted elements, labels renumbered densely. The caller swaps it in and changes nothing meanwhile. */
export async function compactedState(state: State, settings: CollectionSettings): Promise<State> {
  const next = new DocTable();
  const pairs: [number, number][] = [];
  for (const e of state.docs.entries()) {
    const label = next.allocateLabel();
    pairs.push([e.label, label]);
    next.put({ ...e, label });
  }
  const index = await state.index.rebuilt(pairs, pairs.length);
  let storage: VectorStorage | undefined;
  const old = state.storage;
  if (old) {
    storage = new VectorStorage(old.precision, old.dimensions, pairs.length);
    for (const [from, to] of pairs) storage.copyFrom(old, from, to);
  }
  return { index, docs: next, storage, lexical: buildLexical(settings, next) };
}
