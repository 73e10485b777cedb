/**
 * Durability through the whole service: a server process is killed with SIGKILL while clients
 * stream upserts; after a restart on the same data directory every acknowledged document is there.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { postJson, putJson, startServerProcess } from './helpers.js';

const vectorOf = (n: number): number[] => Array.from({ length: 64 }, (_, d) => Math.sin(n * 0.37 + d));

describe('SIGKILL during a stream of acknowledged writes', () => {
  it('loses no acknowledged document, at several kill points', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'crash-data-'));
    // Every restart listens on a fresh free port of loopback.
    const start = () => startServerProcess({ DATA_DIR: dataDir, MAX_BATCH_TOKENS: '4096' });
    const acked = new Map<string, { text?: string; n: number }>();
    let next = 0;

    let server = await start();
    let url = server.url;
    expect((await putJson(`${url}/collections/crash`, '{"metric":"cosine"}')).status).toBe(200);

    for (const killAfter of [15, 70, 160]) {
      const target = acked.size + killAfter;
      let stop = false;
      // Four clients write concurrently, half the documents as text (embedded), half as vectors.
      const writers = Array.from({ length: 4 }, async () => {
        while (!stop) {
          const batch = Array.from({ length: 3 }, () => {
            const n = next++;
            return n % 2
              ? { id: `d${n}`, text: `document number ${n}`, metadata: { n } }
              : { id: `d${n}`, vector: vectorOf(n), metadata: { n } };
          });
          const res = await postJson(`${url}/collections/crash/documents`, { documents: batch }).catch(() => null);
          if (res?.status !== 200) break;
          for (const d of batch) acked.set(d.id, { text: 'text' in d ? d.text : undefined, n: d.metadata.n });
          if (acked.size >= target && !stop) {
            stop = true;
            server.child.kill('SIGKILL');
          }
        }
      });
      await Promise.all(writers);
      await server.exited;
      server = await start();
      url = server.url;
      const info = (await (await fetch(`${url}/collections/crash`)).json()) as { count: number };
      expect(info.count).toBeGreaterThanOrEqual(acked.size);
      for (const [id, doc] of acked) {
        const res = await fetch(`${url}/collections/crash/documents/${id}`);
        expect(res.status, `acknowledged ${id} is present after kill at ${killAfter}`).toBe(200);
        const body = (await res.json()) as { text?: string; metadata: { n: number } };
        expect(body.metadata.n).toBe(doc.n);
        expect(body.text).toBe(doc.text);
      }
    }
    server.child.kill('SIGTERM');
    await server.exited;
  }, 180_000);
});
