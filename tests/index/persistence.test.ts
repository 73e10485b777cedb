import { spawn } from 'node:child_process';
import { appendFile, mkdir, open, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CollectionStore, type SearchHit, UnavailableError } from '../../src/index/index.js';
import { EmbeddingSpace, makeTempDir, recordingLogger } from './helpers.js';

const DIMS = 32;
const space = new EmbeddingSpace(7, { dims: DIMS, latent: 8, clusters: 10 });

function makeDocs(n: number, seed: number, prefix = 'd') {
  const { vectors, clusters } = space.sample(n, seed);
  return vectors.map((vector, i) => ({
    id: `${prefix}${i}`,
    vector,
    text: `text of ${prefix}${i}`,
    metadata: { cluster: clusters[i]!, i, nested: { even: i % 2 === 0 } },
  }));
}

function snapshotOf(store: CollectionStore, name: string, queries: Float32Array[]): SearchHit[][] {
  return queries.map((q) => store.search(name, q, { k: 10, include: ['text', 'metadata', 'vector'] }));
}

describe('persistence', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const stores: CollectionStore[] = [];
  const openStore = async (opts: Parameters<typeof CollectionStore.open>[1] = {}) => {
    const s = await CollectionStore.open(dir, opts);
    stores.push(s);
    return s;
  };
  const collDir = () => path.join(dir, 'collections', 'c');
  const walFiles = async () => (await readdir(collDir())).filter((f) => /^wal-\d+\.log$/.test(f)).sort();

  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir());
  });
  afterEach(async () => {
    // Crash simulations leave stores open; close them without a snapshot so they write nothing more.
    for (const s of stores.splice(0)) await s.close({ snapshot: false });
    await cleanup();
  });

  it('close and reopen restores documents, metadata and identical search results', async () => {
    const s1 = await openStore();
    await s1.create('c', { dimensions: DIMS, metric: 'cosine', hnsw: { m: 8, ef_construction: 64 } });
    await s1.create('empty', { dimensions: 3, metric: 'l2' });
    const docs = makeDocs(2000, 1);
    for (let i = 0; i < docs.length; i += 250) await s1.upsert('c', docs.slice(i, i + 250));
    for (let i = 0; i < 100; i++) await s1.delete('c', `d${i * 7}`);
    await s1.upsert('c', [{ id: 'd1', vector: docs[5]!.vector, metadata: { replaced: true } }]);
    const queries = space.sample(20, 99).vectors;
    const before = snapshotOf(s1, 'c', queries);
    const listBefore = s1.list();
    await s1.close();
    expect((await readdir(collDir())).some((f) => f.startsWith('snapshot-'))).toBe(true);

    const s2 = await openStore();
    expect(s2.list()).toEqual(listBefore);
    expect(s2.get('c', 'd1')!.metadata).toEqual({ replaced: true });
    expect(s2.get('c', 'd7')).toBeUndefined();
    expect(s2.get('c', 'd8')).toEqual({
      id: 'd8',
      vector: Array.from(docs[8]!.vector),
      text: 'text of d8',
      metadata: docs[8]!.metadata,
    });
    expect(snapshotOf(s2, 'c', queries)).toEqual(before);
    // And it keeps working: writes after recovery survive another reopen.
    await s2.upsert('c', [{ id: 'after', vector: docs[0]!.vector }]);
    await s2.close();
    const s3 = await openStore();
    expect(s3.get('c', 'after')).toBeDefined();
    expect(s3.info('c').count).toBe(2000 - 100 + 1);
  });

  it('reopening without close (a crash) restores every resolved write from the log', async () => {
    const s1 = await openStore({ snapshotEvery: { records: 1e9, seconds: 0 } });
    await s1.create('c', { dimensions: DIMS });
    const docs = makeDocs(600, 2);
    await Promise.all([0, 1, 2, 3, 4, 5].map((j) => s1.upsert('c', docs.slice(j * 100, j * 100 + 100))));
    await s1.delete('c', 'd3');
    await s1.upsert('c', [{ id: 'd4', vector: docs[0]!.vector, text: 'new' }]);
    const queries = space.sample(10, 5).vectors;
    const before = snapshotOf(s1, 'c', queries);
    // As if the process had died: closing without a snapshot writes nothing, every write is in the log
    // (the store cannot simply be abandoned in-process: its data-directory lock would refuse s2).
    await s1.close({ snapshot: false });
    const s2 = await openStore();
    expect(s2.info('c').count).toBe(599);
    expect(s2.get('c', 'd3')).toBeUndefined();
    expect(s2.get('c', 'd4')!.text).toBe('new');
    expect(s2.get('c', 'd4')!.metadata).toBeUndefined();
    expect(snapshotOf(s2, 'c', queries)).toEqual(before);
  });

  it('recovers from a snapshot plus the log records after it', async () => {
    const s1 = await openStore({ snapshotEvery: { records: 3, seconds: 0 } });
    await s1.create('c', { dimensions: DIMS });
    const docs = makeDocs(50, 3);
    for (const d of docs) await s1.upsert('c', [d]); // 50 records: several snapshots, a log tail after the last
    await s1.snapshot('c').catch(() => undefined);
    await s1.upsert('c', [{ id: 'tail', vector: docs[1]!.vector }]);
    const queries = space.sample(5, 6).vectors;
    const before = snapshotOf(s1, 'c', queries);
    const files = await readdir(collDir());
    expect(files.filter((f) => f.startsWith('snapshot-'))).toHaveLength(1); // old ones cleaned up
    expect(await walFiles()).toHaveLength(1);

    await s1.close({ snapshot: false });
    const s2 = await openStore();
    expect(s2.info('c').count).toBe(51);
    expect(s2.get('c', 'tail')).toBeDefined();
    expect(snapshotOf(s2, 'c', queries)).toEqual(before);
  });

  it('snapshots on its own after the configured number of seconds with unsnapshotted writes', async () => {
    const s1 = await openStore({ snapshotEvery: { records: 1e9, bytes: 1e12, seconds: 1 } });
    await s1.create('c', { dimensions: DIMS });
    await s1.upsert('c', makeDocs(5, 10));
    const snapshots = async () => (await readdir(collDir())).filter((f) => /^snapshot-\d+$/.test(f));
    expect(await snapshots()).toEqual([]);
    const deadline = Date.now() + 5000;
    while ((await snapshots()).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await snapshots()).toEqual(['snapshot-00000000000000000001']);
  });

  async function writeThenAbandon(n: number): Promise<string> {
    const s1 = await openStore({ snapshotEvery: { records: 1e9, seconds: 0 } });
    await s1.create('c', { dimensions: DIMS });
    const docs = makeDocs(n, 4);
    for (const d of docs) await s1.upsert('c', [d]); // one record each
    await s1.close({ snapshot: false });
    const [wal] = await walFiles();
    return path.join(collDir(), wal!);
  }

  it('truncates garbage appended to the log, warns, and keeps every record', async () => {
    const wal = await writeThenAbandon(20);
    const goodSize = (await stat(wal)).size;
    await appendFile(wal, Buffer.from('this is not a log record, just junk after a torn write'));
    const logger = recordingLogger();
    const s = await openStore({ logger });
    expect(s.info('c').count).toBe(20);
    expect(logger.entries.some((e) => e.level === 'warn' && /truncat/i.test(e.msg ?? ''))).toBe(true);
    expect((await stat(wal)).size).toBe(goodSize);
    await s.upsert('c', [{ id: 'new', vector: makeDocs(1, 9)[0]!.vector }]);
    await s.close({ snapshot: false });
    expect((await openStore()).info('c').count).toBe(21);
  });

  it('reports through a pino logger', async () => {
    const wal = await writeThenAbandon(3);
    await appendFile(wal, Buffer.from([7, 0, 0, 0, 1, 2, 3, 4, 5]));
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'warn' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
    const s = await openStore({ logger });
    expect(s.info('c').count).toBe(3);
    expect(lines).toContainEqual(expect.objectContaining({ level: 40, reason: expect.stringMatching(/truncated frame/) }));
  });

  it('drops a torn last record, keeping all before it', async () => {
    const wal = await writeThenAbandon(20);
    await truncate(wal, (await stat(wal)).size - 10);
    const logger = recordingLogger();
    const s = await openStore({ logger });
    expect(s.info('c').count).toBe(19);
    expect(s.get('c', 'd18')).toBeDefined();
    expect(s.get('c', 'd19')).toBeUndefined();
    expect(logger.entries.filter((e) => e.level === 'warn')).toHaveLength(1);
  });

  it('treats a zero-filled tail as damage, not as empty records', async () => {
    const wal = await writeThenAbandon(5);
    await appendFile(wal, Buffer.alloc(4096));
    const logger = recordingLogger();
    const s = await openStore({ logger });
    expect(s.info('c').count).toBe(5);
    expect(logger.entries.some((e) => e.level === 'warn' && e.obj.reason === 'zero-length frame')).toBe(true);
  });

  it('recovers every record that verifies after damage in the middle of the log, and reports what was lost', async () => {
    const wal = await writeThenAbandon(40);
    // Flip 4 bytes inside the 21st record's payload (LSN 22: the create is not a record, the docs are 1..40).
    const buf = await readFile(wal);
    let off = 16;
    for (let r = 0; r < 20; r++) off += 8 + buf.readUInt32LE(off);
    const damagedLsn = Number(buf.readBigUInt64LE(off + 8 + 8));
    const fh = await open(wal, 'r+');
    const b = Buffer.alloc(4);
    await fh.read(b, 0, 4, off + 40);
    for (let i = 0; i < 4; i++) b[i] = b[i]! ^ 0xff;
    await fh.write(b, 0, 4, off + 40);
    await fh.close();
    const damagedBytes = await readFile(wal);

    const logger = recordingLogger();
    const s = await openStore({ logger });
    // Only the damaged record is gone; the 19 acknowledged records after it are back.
    expect(s.info('c').count).toBe(39);
    expect(s.get('c', 'd20')).toBeUndefined();
    for (let i = 0; i < 40; i++) if (i !== 20) expect(s.get('c', `d${i}`), `d${i}`).toBeDefined();
    const report = logger.entries.find((e) => e.level === 'error');
    expect(report?.obj.lostLsns).toEqual([[damagedLsn, damagedLsn]]);
    expect(report?.msg).toMatch(/1 acknowledged record\(s\) could not be recovered/);
    // The damaged segment is kept as found, and the recovered state is snapshotted at once.
    const files = await readdir(collDir());
    const copy = files.find((f) => f.includes('.damaged-'));
    expect(copy).toBeDefined();
    expect((await readFile(path.join(collDir(), copy!))).equals(damagedBytes)).toBe(true);
    expect(files.some((f) => /^snapshot-\d+$/.test(f))).toBe(true);
    expect(s.list()).toHaveLength(1);
    expect(s.recoveries()[0]?.recovery.lostLsns).toEqual([[damagedLsn, damagedLsn]]);

    // Writes go on, and the next start is clean with the same documents.
    await s.upsert('c', [{ id: 'after', vector: makeDocs(1, 9)[0]!.vector }]);
    await s.close({ snapshot: false });
    const logger2 = recordingLogger();
    const s2 = await openStore({ logger: logger2 });
    expect(s2.info('c').count).toBe(40);
    expect(logger2.entries.filter((e) => e.level === 'warn' || e.level === 'error')).toEqual([]);
  });

  it('keeps a torn tail a warning, not damage: nothing verifiable follows it', async () => {
    const wal = await writeThenAbandon(10);
    await truncate(wal, (await stat(wal)).size - 3);
    const logger = recordingLogger();
    const s = await openStore({ logger });
    expect(s.info('c').count).toBe(9);
    expect(logger.entries.filter((e) => e.level === 'error')).toEqual([]);
    expect((await readdir(collDir())).some((f) => f.includes('.damaged-'))).toBe(false);
  });

  it('rebuilds a collection whose snapshot is unusable when the log still covers it', async () => {
    const s1 = await openStore({ snapshotEvery: { records: 1e9, seconds: 0 } });
    await s1.create('c', { dimensions: DIMS });
    await s1.upsert('c', makeDocs(100, 5));
    const [wal] = await walFiles();
    const kept = await readFile(path.join(collDir(), wal!));
    await s1.close(); // snapshots and removes the segment the snapshot covers
    await writeFile(path.join(collDir(), wal!), kept); // an operator restored it from a backup
    const snap = (await readdir(collDir())).find((f) => /^snapshot-\d+$/.test(f))!;
    await writeFile(path.join(collDir(), snap, 'docs.bin'), 'garbage');
    const logger = recordingLogger();
    const s2 = await openStore({ logger });
    expect(s2.info('c').count).toBe(100);
    expect(s2.unavailableCollections()).toEqual([]);
    expect(s2.recoveries()[0]?.recovery.snapshotFallback).toBe(true);
    expect((await readdir(collDir())).some((f) => f.startsWith(`damaged-${snap}`))).toBe(true);
  });

  for (const [what, damage] of [
    [
      'index.hnsw',
      async (snap: string) => {
        const fh = await open(path.join(collDir(), snap, 'index.hnsw'), 'r+');
        await fh.write(Buffer.from([0x42, 0x42, 0x42]), 0, 3, 500);
        await fh.close();
      },
    ],
    ['docs.bin', (snap: string) => writeFile(path.join(collDir(), snap, 'docs.bin'), 'garbage')],
    ['manifest.json', (snap: string) => writeFile(path.join(collDir(), snap, 'manifest.json'), '{')],
    ['settings.json', () => writeFile(path.join(collDir(), 'settings.json'), '{"format": 1, "settings": {"dimensions": -1}}')],
    ['the snapshot directory (missing)', (snap: string) => rm(path.join(collDir(), snap), { recursive: true })],
  ] as const) {
    it(`marks a collection with a damaged ${what} unavailable and serves the others`, async () => {
      const s1 = await openStore();
      await s1.create('c', { dimensions: DIMS });
      await s1.create('ok', { dimensions: 3 });
      await s1.upsert('c', makeDocs(100, 5));
      await s1.upsert('ok', [{ id: 'x', vector: [1, 2, 3] }]);
      await s1.close();
      const snap = (await readdir(collDir())).find((f) => /^snapshot-\d+$/.test(f))!;
      await damage(snap);
      const before = (await readdir(collDir())).sort();

      const logger = recordingLogger();
      const s2 = await openStore({ logger });
      expect(s2.list().map((c) => c.name)).toEqual(['ok']);
      expect(s2.get('ok', 'x')).toBeDefined();
      await s2.upsert('ok', [{ id: 'y', vector: [3, 2, 1] }]);
      const [entry] = s2.unavailableCollections();
      expect(entry?.name).toBe('c');
      expect(entry?.reason).toMatch(/checksum|manifest|settings|records are missing/);
      expect(() => s2.info('c')).toThrow(UnavailableError);
      expect(() => s2.search('c', makeDocs(1, 1)[0]!.vector, { k: 1 })).toThrow(/unavailable/);
      await expect(s2.upsert('c', makeDocs(1, 1))).rejects.toBeInstanceOf(UnavailableError);
      await expect(s2.create('c', { dimensions: DIMS })).rejects.toBeInstanceOf(UnavailableError);
      // Its files are left as they were for the operator, who may drop it.
      expect((await readdir(collDir())).sort()).toEqual(before);
      await s2.drop('c');
      expect(s2.unavailableCollections()).toEqual([]);
      await s2.create('c', { dimensions: DIMS });
    });
  }

  describe('one process per data directory', () => {
    it("refuses a second store on the same directory, naming the holder's PID", async () => {
      await openStore();
      await expect(CollectionStore.open(dir)).rejects.toThrow(new RegExp(`in use by process ${process.pid}\\b`));
    });

    it('refuses a second server process and takes over the lock of a killed one', async () => {
      const script = `
        const { CollectionStore } = await import(${JSON.stringify(path.resolve('src/index/index.ts'))});
        try { await CollectionStore.open(process.argv[1]); console.log("opened"); }
        catch (e) { console.log("refused: " + e.message); process.exit(3); }
        setInterval(() => {}, 1000);`;
      const run = () =>
        spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
      const firstLine = (child: ReturnType<typeof run>) =>
        new Promise<string>((resolve) => child.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim())));
      const holder = run();
      try {
        expect(await firstLine(holder)).toBe('opened');
        const second = run();
        expect(await firstLine(second)).toBe(
          `refused: data directory ${dir} is in use by process ${holder.pid} on ${hostname()} (since ${JSON.parse(await readFile(path.join(dir, 'LOCK'), 'utf8')).since}); one process per data directory (lock file ${path.join(dir, 'LOCK')})`,
        );
      } finally {
        holder.kill('SIGKILL');
      }
      await new Promise((r) => holder.once('exit', r));
      // The killed holder's lock file is still there, and does not block the restart.
      expect(JSON.parse(await readFile(path.join(dir, 'LOCK'), 'utf8')).pid).toBe(holder.pid);
      const s = await openStore();
      await s.close();
      await expect(stat(path.join(dir, 'LOCK'))).rejects.toThrow(/ENOENT/);
    }, 60_000);

    it('takes over a lock naming its own PID that it does not hold (a restarted container is PID 1 again)', async () => {
      await writeFile(path.join(dir, 'LOCK'), JSON.stringify({ pid: process.pid, host: hostname(), since: 'earlier' }));
      const s = await openStore();
      expect(JSON.parse(await readFile(path.join(dir, 'LOCK'), 'utf8')).since).not.toBe('earlier');
      await s.close();
    });
  });

  it('cleans up leftovers of interrupted creates, drops and snapshots', async () => {
    const s1 = await openStore();
    await s1.create('c', { dimensions: DIMS });
    await s1.upsert('c', makeDocs(10, 6));
    await s1.close();
    await mkdir(path.join(dir, 'collections', 'x.creating-1-2'));
    await mkdir(path.join(dir, 'collections', 'y.dropping-1-2'));
    await writeFile(path.join(dir, 'collections', 'x.creating-1-2', 'settings.json'), '{');
    await mkdir(path.join(collDir(), 'snapshot-00000000000000000099.tmp'));
    const s2 = await openStore();
    expect(s2.list().map((c) => c.name)).toEqual(['c']);
    expect(s2.info('c').count).toBe(10);
    expect((await readdir(path.join(dir, 'collections'))).sort()).toEqual(['c']);
    expect((await readdir(collDir())).some((f) => f.endsWith('.tmp'))).toBe(false);
  });

  it('compacts away deleted elements on snapshot and stays correct', async () => {
    const s1 = await openStore({ compactMinDeleted: 100, snapshotEvery: { records: 1e9, seconds: 0 } });
    await s1.create('c', { dimensions: DIMS, metric: 'l2' });
    const docs = makeDocs(200, 7);
    for (let round = 0; round < 3; round++) {
      await s1.upsert(
        'c',
        docs.map((d) => ({ ...d, metadata: { round } })),
      );
    }
    for (let i = 0; i < 50; i++) await s1.delete('c', `d${i}`);
    const queries = space.sample(10, 8).vectors;
    const before = snapshotOf(s1, 'c', queries);
    // hnswlib's file header holds the element count (deleted ones included) at byte 16.
    const indexElements = async () => {
      const snap = (await readdir(collDir())).find((f) => f.startsWith('snapshot-'))!;
      return Number((await readFile(path.join(collDir(), snap, 'index.hnsw'))).readBigUInt64LE(16));
    };
    await s1.snapshot('c');
    expect(await indexElements()).toBe(150); // 600 before compaction
    expect(snapshotOf(s1, 'c', queries)).toEqual(before);
    await s1.upsert('c', [{ id: 'post', vector: docs[0]!.vector }]);
    await s1.close();
    const s2 = await openStore();
    expect(s2.info('c').count).toBe(151);
    expect(s2.get('c', 'd60')!.metadata).toEqual({ round: 2 });
    expect(s2.search('c', docs[0]!.vector, { k: 1 })[0]!.id).toBe('post');
  });
});
