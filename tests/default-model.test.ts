/** The embedded default model is a trained one: it serves meaning, not random vectors. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSick, loadStsb, spearman } from '../benchmarks/eval-lib.js';
import { cosine, DEFAULT_MODEL, hasShared, postJson, SHARED_SKIP_REASON, startServer, type TestServer } from './helpers.js';

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

  it('ships query/document prompts that are prepended and change the vector', async () => {
    const config = JSON.parse(readFileSync(join(DEFAULT_MODEL, 'config_sentence_transformers.json'), 'utf8')) as {
      prompts: Record<string, string>;
    };
    expect(Object.keys(config.prompts).sort()).toEqual(['document', 'query']);
    const text = 'how do I change the default keyboard layout';
    const plain = (await postJson(`${s.url}/embed`, { inputs: [text] })).json as number[][];
    for (const name of ['query', 'document']) {
      const prompted = (await postJson(`${s.url}/embed`, { inputs: [text], prompt_name: name })).json as number[][];
      const byHand = (await postJson(`${s.url}/embed`, { inputs: [config.prompts[name] + text] })).json as number[][];
      expect(cosine(prompted[0]!, byHand[0]!), name).toBeGreaterThan(0.9999);
      expect(cosine(prompted[0]!, plain[0]!), name).toBeLessThan(0.999);
    }
  });

  // The shipped layers are the identity (no layer training beat the trained table on held-in data,
  // benchmarks/EVAL.md), which is why README calls `layer: 1` the fast choice: it must return the
  // full-depth vectors. When trained layers ship, this becomes "different exit layers differ".
  it('gives the full-depth vectors at every exit layer', async () => {
    const inputs = ['A man is playing a guitar.', 'query: how do I change the keyboard layout'];
    const full = (await postJson(`${s.url}/embed`, { inputs })).json as number[][];
    for (const layer of [1, 2, 3]) {
      const early = (await postJson(`${s.url}/embed`, { inputs, layer })).json as number[][];
      for (const [i, v] of early.entries()) expect(cosine(v, full[i]!), `layer ${layer}`).toBeGreaterThan(0.99999);
    }
  });

  // Trained with each short sentence's negation as a hard negative (training/negation.py): "not"
  // must move a sentence further than a paraphrase does. The build before that gave the negation
  // 0.93 / 0.96 / 0.69 against the paraphrase's 0.77 / 0.72 / 0.57 and fails this.
  it('tells a sentence from its negation', async () => {
    const triples: Array<[string, string, string]> = [
      ['A man is playing a guitar.', 'A man is not playing a guitar.', 'A man plays the guitar.'],
      ['The woman is slicing an onion.', 'The woman is not slicing an onion.', 'A woman cuts an onion.'],
      ['The train arrived on time.', 'The train did not arrive on time.', 'The train came on schedule.'],
    ];
    for (const [text, negated, paraphrase] of triples) {
      const [v, n, p] = (await postJson(`${s.url}/embed`, { inputs: [text, negated, paraphrase] })).json as number[][];
      expect(cosine(v!, n!), text).toBeLessThan(cosine(v!, p!));
    }
  });

  // Floors under the quality benchmarks/EVAL.md reports through `npm run eval`: STS-B dev 0.796 at
  // full size and 0.766 at 64 dimensions, SICK-R test 0.666. The first default (v1: 0.765 / 0.704 /
  // 0.592) fails the STS-B floors, the build before negation training (SICK-R 0.623) the SICK-R one.
  it.skipIf(!hasShared)(
    'keeps its STS-B dev and SICK-R test Spearman through the service',
    async () => {
      const embed = async (texts: string[], dimensions: number): Promise<number[][]> => {
        const out: number[][] = [];
        for (let i = 0; i < texts.length; i += 100)
          out.push(...((await postJson(`${s.url}/embed`, { inputs: texts.slice(i, i + 100), dimensions })).json as number[][]));
        return out;
      };
      const dev = loadStsb('dev');
      const sick = loadSick();
      expect(dev.gold.length).toBe(1500);
      expect(sick.gold.length).toBe(4927);
      for (const [name, set, dimensions, floor] of [
        ['STS-B dev', dev, 256, 0.79],
        ['STS-B dev', dev, 64, 0.75],
        ['SICK-R test', sick, 256, 0.645],
      ] as const) {
        const a = await embed(set.a, dimensions);
        const b = await embed(set.b, dimensions);
        expect(
          spearman(
            a.map((v, i) => cosine(v, b[i]!)),
            set.gold,
          ),
          `${name}, ${dimensions} dimensions`,
        ).toBeGreaterThan(floor);
      }
    },
    120_000,
  );
});
if (!hasShared) console.warn(`default model quality test: ${SHARED_SKIP_REASON}`);

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
