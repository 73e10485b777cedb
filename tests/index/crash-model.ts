import { Rng } from './helpers.js';

/** What the crash writer writes, reproducible by the parent from (id, seq) alone. */

export const CRASH_COLLECTION = 'crash';
export const CRASH_DIMS = 48;
export const CRASH_IDS = Array.from({ length: 150 }, (_, i) => `doc-${i}`);

/** A word unique to one (id, seq): what the lexical index must find exactly when that version is stored. */
export function crashWord(id: string, seq: number): string {
  return `w${id.slice(4)}x${seq}`;
}

export function crashDoc(id: string, seq: number) {
  const rng = new Rng(seq * 1000 + Number(id.slice(4)));
  return {
    id,
    vector: Array.from({ length: CRASH_DIMS }, () => rng.gauss()),
    // `text` is in every document; the last word is in this version of this document only.
    text: `text ${id} @${seq} ${crashWord(id, seq)}`,
    metadata: { id, seq, parity: seq % 2 === 0 ? 'even' : 'odd' },
  };
}
