/** The embedded default model is a trained one: it serves meaning, not random vectors. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosine, DEFAULT_MODEL, postJson, startServer, type TestServer } from './helpers.js';

describe('models/default', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({ modelDir: DEFAULT_MODEL });
  });
  afterAll(async () => s?.close());

  it('is not marked untrained', async () => {
    const info = (await (await fetch(`${s.url}/info`)).json()) as { untrained: boolean };
    expect(info.untrained).toBe(false);
  });

  it('puts related sentences closer than unrelated ones (the README example)', async () => {
    const res = await postJson(`${s.url}/embed`, {
      inputs: ['A man is playing a guitar.', 'Someone plays an instrument.', 'The stock market fell today.'],
    });
    const [guitar, instrument, stocks] = res.json as number[][];
    expect(cosine(guitar!, instrument!)).toBeGreaterThan(cosine(guitar!, stocks!) + 0.15);
    const pairs: Array<[string, string, string]> = [
      ['A woman is slicing an onion.', 'Someone is cutting vegetables.', 'The train arrived late.'],
      ['The cat sleeps on the sofa.', 'A kitten is napping on the couch.', 'Interest rates rose sharply.'],
    ];
    for (const [a, related, unrelated] of pairs) {
      const [va, vr, vu] = (await postJson(`${s.url}/embed`, { inputs: [a, related, unrelated] })).json as number[][];
      expect(cosine(va!, vr!), `${a} ~ ${related}`).toBeGreaterThan(cosine(va!, vu!));
    }
  });
});

const PYTHON = '/usr/bin/python3';
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch, onnx'], { stdio: 'ignore' }).status === 0;
if (!hasTorch)
  console.warn('skipping the re-export check: /usr/bin/python3 cannot import torch and onnx (apt install python3-torch python3-onnx)');

describe.skipIf(!hasTorch)('models/default and the training code', () => {
  // training/model.py is the one BERT definition (the fixtures use it too): the shipped model,
  // rebuilt from its seed and token vectors and exported by training/train_default_model.py, must
  // come out byte for byte as committed, or a change to the shared definition changed the model.
  it('re-exports byte for byte through training/reexport_default.py', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'reexport-')), 'default');
    try {
      const r = spawnSync(PYTHON, ['training/reexport_default.py', out], { encoding: 'utf8' });
      if (r.status === 3) {
        console.warn(`skipping the byte comparison: ${r.stderr.trim()}`);
        return;
      }
      expect(r.status, r.stderr).toBe(0);
      const files = (dir: string): string[] =>
        readdirSync(dir, { recursive: true, withFileTypes: true })
          .filter((e) => e.isFile())
          .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
          .filter((f) => !f.split('/').some((part) => part.startsWith('.'))) // the service's graph caches
          .sort();
      expect(files(out)).toEqual(files(DEFAULT_MODEL));
      for (const f of files(out)) expect(readFileSync(join(out, f)).equals(readFileSync(join(DEFAULT_MODEL, f))), f).toBe(true);
    } finally {
      rmSync(join(out, '..'), { recursive: true, force: true });
    }
  });
});
