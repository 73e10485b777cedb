/**
 * Child process for crash.test.ts: writes to a store as fast as it can until
 * it is SIGKILLed. Protocol on stdout, one line each, written synchronously
 * (stdout is a pipe, and pipe writes are synchronous in Node on POSIX):
 *
 *   B <seq> U <id> <id>...   before an upsert of those ids is issued
 *   B <seq> D <id>           before a delete is issued
 *   A <seq>                  after that call's promise resolved (acknowledged)
 *   PHASE <phase>            the store is about to block inside a snapshot phase
 *
 * Usage: crash-writer.ts <dataDir> <seqBase> <blockPhase|none>
 */
import { CollectionStore, type SnapshotPhase } from '../../src/index/index.js';
import { CRASH_COLLECTION, CRASH_DIMS, CRASH_IDS, crashDoc } from './crash-model.js';
import { Rng } from './helpers.js';

const [dataDir, seqBaseArg, blockPhase] = process.argv.slice(2);
if (!dataDir || !seqBaseArg || !blockPhase) throw new Error('usage: crash-writer.ts <dataDir> <seqBase> <phase|none>');
let seq = Number(seqBaseArg);
const out = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

let phaseHits = 0;
const store = await CollectionStore.open(dataDir, {
  snapshotEvery: { records: 15, seconds: 0 },
  hooks: {
    snapshotPhase(phase: SnapshotPhase) {
      // Block on the second time through, so an earlier snapshot already exists.
      if (phase === blockPhase && ++phaseHits === 2) {
        out(`PHASE ${phase}`);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
      }
    },
  },
});
await store.create(CRASH_COLLECTION, { dimensions: CRASH_DIMS, metric: 'l2', lexical: true });

const rng = new Rng(Number(seqBaseArg) + 1);
const busy = new Set<string>();

async function worker(): Promise<never> {
  for (;;) {
    const s = ++seq;
    if (rng.next() < 0.15) {
      const id = pickFree();
      busy.add(id);
      out(`B ${s} D ${id}`);
      await store.delete(CRASH_COLLECTION, id);
      out(`A ${s}`);
      busy.delete(id);
    } else {
      const ids = [pickFree()];
      busy.add(ids[0]!);
      const extra = rng.int(3);
      for (let i = 0; i < extra; i++) {
        const id = pickFree();
        busy.add(id);
        ids.push(id);
      }
      out(`B ${s} U ${ids.join(' ')}`);
      await store.upsert(
        CRASH_COLLECTION,
        ids.map((id) => crashDoc(id, s)),
      );
      out(`A ${s}`);
      for (const id of ids) busy.delete(id);
    }
  }
}

/** An id no in-flight call touches, so each id's calls are strictly ordered by their acks. */
function pickFree(): string {
  for (;;) {
    const id = CRASH_IDS[rng.int(CRASH_IDS.length)]!;
    if (!busy.has(id)) return id;
  }
}

await Promise.all([worker(), worker(), worker(), worker()]);
