import { spawn } from 'node:child_process';
import { appendFile, readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CollectionStore } from '../../src/index/index.js';
import { CRASH_COLLECTION, CRASH_IDS, crashDoc, crashWord } from './crash-model.js';
import { makeTempDir, recordingLogger } from './helpers.js';

/*
 * kill -9 tests (the collection has a lexical index too, which must agree with
 * the documents after every recovery): a child process (crash-writer.ts) writes with 4 concurrent
 * callers and reports each call before issuing it and after it resolved; the
 * test SIGKILLs it at chosen moments, reopens the store and checks that every
 * acknowledged write is there, exactly. Kills repeat on the same directory,
 * so later runs also recover from state that earlier recoveries produced.
 */

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
const WRITER = path.join(REPO_ROOT, 'tests/index/crash-writer.ts');

/** Per id: the possible states, as the seq of the upsert that wrote it, or null for absent. */
type Model = Map<string, number | null>;

interface RunResult {
  begun: Map<number, { op: 'U' | 'D'; ids: string[] }>;
  acked: Set<number>;
  acks: number;
  phase: string | undefined;
}

function runWriter(dir: string, seqBase: number, kill: { afterAcks?: number; phase?: string }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir, String(seqBase), kill.phase ?? 'none'], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const result: RunResult = { begun: new Map(), acked: new Set(), acks: 0, phase: undefined };
    let buf = '';
    let stderr = '';
    let killed = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`writer did not reach its kill point in time; stderr: ${stderr}`));
    }, 60_000);
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const [tag, a, op, ...ids] = line.split(' ');
        if (tag === 'B') result.begun.set(Number(a), { op: op as 'U' | 'D', ids });
        else if (tag === 'A') {
          result.acked.add(Number(a));
          result.acks++;
        } else if (tag === 'PHASE') result.phase = a;
        // Lines keep arriving after the kill is sent (the child is not dead yet, and
        // the pipe holds what it wrote); all of them count: a "B" line means the
        // call may have reached the log, an "A" line is a real acknowledgement.
        if (!killed && ((kill.afterAcks !== undefined && result.acks >= kill.afterAcks) || (kill.phase && result.phase))) {
          killed = true;
          child.kill('SIGKILL');
        }
      }
    });
    // 'close', not 'exit': only after 'close' has every line the child wrote before dying been read.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      // A last line cut off by the kill: a partial "B" line still announces a call that may
      // have been issued (its ids may be cut too, so it is ignored only if unparseable).
      const [tag, a, op, ...ids] = buf.split(' ');
      if (tag === 'B' && a && op && ids.length > 0) result.begun.set(Number(a), { op: op as 'U' | 'D', ids });
      if (signal !== 'SIGKILL') reject(new Error(`writer exited on its own (code ${code}): ${stderr}`));
      else resolve(result);
    });
  });
}

/** Folds a run into the model: per id, the states a correct recovery may show. */
function expectedStates(prev: Model, run: RunResult): Map<string, Set<number | null>> {
  const out = new Map<string, Set<number | null>>();
  for (const id of CRASH_IDS) out.set(id, new Set([prev.get(id) ?? null]));
  // Calls touching an id never overlap, so seq order is their order for that id.
  const bySeq = [...run.begun.entries()].sort((a, b) => a[0] - b[0]);
  for (const [seq, { op, ids }] of bySeq) {
    for (const id of ids) {
      const state = op === 'U' ? seq : null;
      if (run.acked.has(seq))
        out.set(id, new Set([state])); // acked: the only allowed state from here on
      else out.get(id)!.add(state); // in flight at the kill: may or may not have landed
    }
  }
  return out;
}

describe('SIGKILL during writes', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const model: Model = new Map();
  let seqBase = 0;

  beforeAll(async () => {
    ({ dir, cleanup } = await makeTempDir('vecstore-crash-'));
  });
  afterAll(async () => {
    await cleanup();
  });

  async function killAndVerify(kill: { afterAcks?: number; phase?: string }): Promise<void> {
    seqBase += 1_000_000;
    const run = await runWriter(dir, seqBase, kill);
    if (kill.phase) expect(run.phase).toBe(kill.phase);
    else expect(run.acked.size).toBeGreaterThanOrEqual(kill.afterAcks!);
    const allowed = expectedStates(model, run);

    const logger = recordingLogger();
    const store = await CollectionStore.open(dir, { logger });
    try {
      let present = 0;
      for (const id of CRASH_IDS) {
        const got = store.get(CRASH_COLLECTION, id);
        const states = allowed.get(id)!;
        if (!got) {
          expect(states.has(null), `${id} missing; allowed ${[...states]}`).toBe(true);
          model.set(id, null);
          continue;
        }
        present++;
        const seq = got.metadata!.seq as number;
        expect(states.has(seq), `${id} has seq ${seq}; allowed ${[...states]}`).toBe(true);
        const want = crashDoc(id, seq);
        expect(got.vector).toEqual(want.vector.map(Math.fround));
        expect(got.text).toBe(want.text);
        expect(got.metadata).toEqual(want.metadata);
        // The graph agrees with the doc table: the exact vector finds this doc at distance 0.
        const [hit] = store.search(CRASH_COLLECTION, want.vector, { k: 1, include: [] });
        expect(hit!.score).toBeCloseTo(0, 5);
        // So does the lexical index: this version's own word finds exactly this doc.
        const lexical = store.search(CRASH_COLLECTION, undefined, { k: 5, mode: 'lexical', text: crashWord(id, seq), include: [] });
        expect(lexical.map((h) => h.id)).toEqual([id]);
        model.set(id, seq);
      }
      expect(store.info(CRASH_COLLECTION).count).toBe(present);
      // Every stored document, and nothing else (no replaced or deleted version), is in the lexical index.
      const all = store.search(CRASH_COLLECTION, undefined, { k: 1000, mode: 'lexical', text: 'text', include: [] });
      expect(all.map((h) => h.id).sort()).toEqual(CRASH_IDS.filter((id) => model.get(id) !== null).sort());
      expect(logger.entries.filter((e) => e.level === 'error')).toEqual([]);
    } finally {
      await store.close({ snapshot: false });
    }
  }

  it.each([20, 137, 400])(
    'keeps every acknowledged write when killed after %i acks',
    async (n) => {
      await killAndVerify({ afterAcks: n });
    },
    90_000,
  );

  it.each(['begin', 'index-written', 'rotated', 'synced', 'renamed'])(
    'keeps every acknowledged write when killed inside a snapshot (phase %s)',
    async (phase) => {
      await killAndVerify({ phase });
    },
    90_000,
  );

  it('left the directory in a clean shape', async () => {
    const files = await readdir(path.join(dir, 'collections', CRASH_COLLECTION));
    expect(files.filter((f) => f.startsWith('snapshot-') && !f.endsWith('.tmp')).length).toBeLessThanOrEqual(2);
    expect(files.filter((f) => f.endsWith('.discarded'))).toEqual([]);
  });

  it('survives garbage at the end of the log of a killed writer', async () => {
    await killAndVerify({ afterAcks: 50 });
    const colDir = path.join(dir, 'collections', CRASH_COLLECTION);
    const wals = (await readdir(colDir)).filter((f) => /^wal-\d+\.log$/.test(f)).sort();
    await appendFile(path.join(colDir, wals[wals.length - 1]!), Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]));
    const logger = recordingLogger();
    const store = await CollectionStore.open(dir, { logger });
    expect(logger.entries.some((e) => e.level === 'warn')).toBe(true);
    for (const [id, seq] of model) {
      if (seq === null) expect(store.get(CRASH_COLLECTION, id)).toBeUndefined();
      else expect(store.get(CRASH_COLLECTION, id)!.metadata!.seq).toBe(seq);
      const words = store.search(CRASH_COLLECTION, undefined, { k: 5, mode: 'lexical', text: `text ${id}`, include: [] });
      expect(words.some((h) => h.id === id)).toBe(seq !== null);
    }
    await store.close();
  }, 90_000);
});
