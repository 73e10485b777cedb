/**
 * Two replicas of the service (real processes) over one PostgreSQL (a
 * throwaway cluster from Debian's binaries) behind Debian's haproxy:
 * read-your-writes across replicas, SIGKILL of a replica during a bulk ingest
 * through the balancer, PostgreSQL restarting under traffic, and a replica
 * starting while PostgreSQL is down. Acknowledged writes are checked against
 * PostgreSQL's own rows (psql), not only through the service.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresUnavailableReason, startTempCluster, type TempCluster } from '../../tools/postgres.js';
import { type Balancer, haproxyUnavailableReason, type ReplicaProcess, startHaproxy, startReplica } from '../../tools/replica-harness.js';
import { postJson, putJson, TINY_BERT } from '../helpers.js';

const skip = postgresUnavailableReason() ?? haproxyUnavailableReason();
if (skip) console.warn(skip);

const DIMS = 32;
const vectorOf = (n: number): number[] => Array.from({ length: DIMS }, (_, d) => Math.sin(n * 0.37 + d * 1.3) + (d === n % DIMS ? 2 : 0));

async function getJson(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; json: any }> {
  const res = await fetch(url, { headers });
  return { status: res.status, headers: res.headers, json: await res.json().catch(() => undefined) };
}

function psqlIds(cluster: TempCluster, db: string, collection: string): Set<string> {
  const out = cluster.psql(`SELECT id FROM documents WHERE collection = '${collection}'`, db).trim();
  return new Set(out ? out.split('\n') : []);
}

describe.skipIf(skip !== undefined)('replicas over PostgreSQL behind haproxy', () => {
  let cluster: TempCluster;
  let storeUrl: string;
  const db = `replicas_${process.pid}`;
  let r1: ReplicaProcess;
  let r2: ReplicaProcess;
  let lb: Balancer;

  beforeAll(async () => {
    cluster = await startTempCluster();
    storeUrl = cluster.createDatabase(db);
    // Both replicas start together: the migration runs once, under the advisory lock.
    [r1, r2] = await Promise.all([startReplica({ storeUrl, modelDir: TINY_BERT }), startReplica({ storeUrl, modelDir: TINY_BERT })]);
    await Promise.all([r1.ready(150_000), r2.ready(150_000)]);
    lb = await startHaproxy([r1.port, r2.port]);
  }, 300_000);

  afterAll(async () => {
    await lb?.stop();
    await Promise.all([r1?.kill(), r2?.kill()]);
    cluster?.destroy();
  });

  it('a write through one replica is searchable through the other with x-min-store-seq', async () => {
    const created = await putJson(`${r1.url}/collections/ryw`, { dimensions: DIMS });
    expect(created.status).toBe(200);
    const createdSeq = Number(created.headers.get('x-store-seq'));
    expect(createdSeq).toBeGreaterThan(0);

    for (let round = 0; round < 5; round++) {
      const id = `doc-${round}`;
      const w = await postJson(`${r1.url}/collections/ryw/documents`, {
        documents: [{ id, vector: vectorOf(1000 + round), metadata: { round } }],
      });
      expect(w.status).toBe(200);
      const seq = w.headers.get('x-store-seq')!;
      expect(Number(seq)).toBeGreaterThan(createdSeq);
      // Immediately, on the other replica: it waits for the sequence number, then answers.
      const s = await postJson(`${r2.url}/search`, { collection: 'ryw', vector: vectorOf(1000 + round), k: 1 }, { 'x-min-store-seq': seq });
      expect(s.status).toBe(200);
      expect(s.json.results[0]).toMatchObject({ id, metadata: { round } });
      const g = await getJson(`${r2.url}/collections/ryw/documents/${id}`, { 'x-min-store-seq': seq });
      expect(g.status).toBe(200);
    }
    // A sequence number no write has reached: 504 at the request's deadline.
    const ahead = await postJson(
      `${r2.url}/search`,
      { collection: 'ryw', vector: vectorOf(1), k: 1 },
      { 'x-min-store-seq': '999999999', 'x-request-timeout-ms': '300' },
    );
    expect(ahead.status).toBe(504);
    expect(ahead.json).toMatchObject({ error_type: 'timeout', error_code: 'STORE_SEQ_NOT_REACHED' });
    const bad = await postJson(`${r2.url}/search`, { collection: 'ryw', vector: vectorOf(1), k: 1 }, { 'x-min-store-seq': 'soon' });
    expect(bad.status).toBe(422);
    expect(bad.json.error_code).toBe('INVALID_MIN_STORE_SEQ');

    const metrics = await (await fetch(`${r2.url}/metrics`)).text();
    const applied = Number(/^embed_store_applied_seq (\d+)/m.exec(metrics)![1]);
    expect(applied).toBeGreaterThanOrEqual(createdSeq + 5);
    expect(metrics).toMatch(/^embed_store_lag_seconds \d/m);
    expect(metrics).toMatch(/^embed_store_connected 1/m);
  });

  it('SIGKILL of a replica during a bulk ingest through the balancer loses no acknowledged document', async () => {
    expect((await putJson(`${lb.url}/collections/bulk`, { dimensions: DIMS })).status).toBe(200);
    const acked = new Set<string>();
    let lastSeq = 0;
    let next = 0;
    let failures = 0;
    let killed = false;
    let afterKill = 0;
    const writers = Array.from({ length: 4 }, async () => {
      while (afterKill < 400) {
        const batch = Array.from({ length: 25 }, () => {
          const n = next++;
          return { id: `b${n}`, vector: vectorOf(n), metadata: { n } };
        });
        const res = await postJson(`${lb.url}/collections/bulk/documents`, { documents: batch }).catch(() => null);
        if (res?.status !== 200) {
          failures++;
          continue;
        }
        for (const d of batch) acked.add(d.id);
        lastSeq = Math.max(lastSeq, Number(res.headers.get('x-store-seq')));
        if (killed) afterKill += batch.length;
        if (!killed && acked.size >= 600) {
          killed = true;
          r1.child.kill('SIGKILL');
        }
      }
    });
    await Promise.all(writers);
    // The balancer routed around the dead replica: writes kept being acknowledged.
    expect(afterKill).toBeGreaterThanOrEqual(400);
    // Everything acknowledged is committed in PostgreSQL…
    const inPg = psqlIds(cluster, db, 'bulk');
    const missing = [...acked].filter((id) => !inPg.has(id));
    expect(missing).toEqual([]);
    // …and served by the surviving replica.
    const info = await getJson(`${r2.url}/collections/bulk`, { 'x-min-store-seq': String(lastSeq) });
    expect(info.json.count).toBe(inPg.size);
    // The killed replica comes back, loads from PostgreSQL and agrees.
    await r1.restart();
    await r1.ready(150_000);
    const back = await getJson(`${r1.url}/collections/bulk`, { 'x-min-store-seq': String(lastSeq) });
    expect(back.json.count).toBe(inPg.size);
    const sample = [...acked].filter((_, i) => i % 97 === 0);
    for (const id of sample) expect((await getJson(`${r1.url}/collections/bulk/documents/${id}`)).status).toBe(200);
    console.log(`bulk ingest: ${acked.size} acknowledged, ${failures} requests failed around the kill, ${inPg.size} rows in PostgreSQL`);
  }, 300_000);

  it('PostgreSQL restarting under traffic: writes get 503 unavailable with Retry-After, searches stay up (stale), both replicas catch up', async () => {
    expect((await putJson(`${lb.url}/collections/pgr`, { dimensions: DIMS })).status).toBe(200);
    const acked = new Set<string>();
    const statuses = new Map<number, number>();
    let unavailable: { retryAfter: string | null; type: string; code: string } | undefined;
    let staleSearches = 0;
    let searchFailures = 0;
    let next = 0;
    let lastSeq = 0;
    let stop = false;
    const writer = async (): Promise<void> => {
      while (!stop) {
        const n = next++;
        const res = await postJson(`${lb.url}/collections/pgr/documents`, { documents: [{ id: `p${n}`, vector: vectorOf(n) }] }).catch(
          () => null,
        );
        const status = res?.status ?? 0;
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (status === 200) {
          acked.add(`p${n}`);
          lastSeq = Math.max(lastSeq, Number(res!.headers.get('x-store-seq')));
        } else if (status === 503) {
          unavailable ??= { retryAfter: res!.headers.get('retry-after'), type: res!.json.error_type, code: res!.json.error_code };
        }
        // Paced: steady traffic, not a CPU hog on a shared machine.
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const searcher = async (): Promise<void> => {
      while (!stop) {
        const res = await postJson(`${lb.url}/search`, { collection: 'pgr', vector: vectorOf(next), k: 3 }).catch(() => null);
        if (res?.status !== 200) searchFailures++;
        else if (res.headers.get('x-store-stale') === 'true') staleSearches++;
        await new Promise((r) => setTimeout(r, 30));
      }
    };
    const traffic = [writer(), writer(), searcher()];
    await new Promise((r) => setTimeout(r, 1000));
    cluster.stop('fast');
    await new Promise((r) => setTimeout(r, 2500));
    cluster.start();
    await new Promise((r) => setTimeout(r, 2500));
    stop = true;
    await Promise.all(traffic);

    expect(unavailable, `write statuses: ${JSON.stringify([...statuses])}`).toEqual({
      retryAfter: expect.stringMatching(/^\d+$/),
      type: 'unavailable',
      code: 'STORE_UNAVAILABLE',
    });
    expect([...statuses.keys()].filter((s) => s !== 200 && s !== 503)).toEqual([]);
    expect(searchFailures).toBe(0);
    expect(staleSearches).toBeGreaterThan(0);
    // Writes resumed after the restart without any replica being restarted.
    const inPg = psqlIds(cluster, db, 'pgr');
    expect([...acked].filter((id) => !inPg.has(id))).toEqual([]);
    for (const r of [r1, r2]) {
      const info = await getJson(`${r.url}/collections/pgr`, { 'x-min-store-seq': String(lastSeq) });
      expect(info.status).toBe(200);
      expect(info.json.count).toBe(inPg.size);
      expect(info.headers.get('x-store-stale')).toBeNull();
    }
  }, 120_000);

  it('a replica started while PostgreSQL is down is live but not ready, and becomes ready once it can load', async () => {
    cluster.stop('fast');
    let r3: ReplicaProcess | undefined;
    try {
      r3 = await startReplica({ storeUrl, modelDir: TINY_BERT });
      // Generous: on a busy shared machine a replica at nice 10 takes a while to load its model.
      await expect
        .poll(
          () =>
            fetch(`${r3!.url}/health`).then(
              (r) => r.status,
              () => 0,
            ),
          { timeout: 150_000, interval: 200 },
        )
        .toBe(200);
      const ready = await getJson(`${r3.url}/ready`);
      expect(ready.status).toBe(503);
      expect(ready.json).toMatchObject({ error_type: 'unavailable', error_code: 'REPLICA_LOADING' });
      cluster.start();
      await r3.ready(150_000);
      expect((await getJson(`${r3.url}/collections/bulk`)).json.count).toBe(psqlIds(cluster, db, 'bulk').size);
    } finally {
      if (
        !(await fetch(`${r1.url}/health`).then(
          () => true,
          () => false,
        ))
      )
        cluster.start();
      await r3?.kill();
    }
  }, 360_000);
});
