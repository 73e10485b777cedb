/**
 * The one feed builder (src/runtime/feeds.ts): padding and typing by hand, and a graph whose
 * integer inputs are int32 served end to end (worker and int8 guard) with the same vectors as the
 * int64 original.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/runtime/engine.js';
import { graphInputs, padFeeds } from '../src/runtime/feeds.js';
import { loadModelDir } from '../src/runtime/model-dir.js';
import { choosePrecision } from '../src/runtime/precision.js';
import { cosine, TINY_BERT } from './helpers.js';

describe('padFeeds', () => {
  const inputs = { names: new Set(['input_ids', 'attention_mask', 'token_type_ids', 'position_ids']), int32: new Set(['attention_mask']) };

  it('pads right by default, counts positions over real tokens, types each input as declared', () => {
    const { feeds, seqLen, starts } = padFeeds([[5, 6, 7], [8]], inputs);
    expect(seqLen).toBe(3);
    expect(starts).toEqual([0, 0]);
    expect(feeds.input_ids!.type).toBe('int64');
    expect(Array.from(feeds.input_ids!.data as BigInt64Array, Number)).toEqual([5, 6, 7, 8, 0, 0]);
    expect(feeds.attention_mask!.type).toBe('int32');
    expect(Array.from(feeds.attention_mask!.data as Int32Array)).toEqual([1, 1, 1, 1, 0, 0]);
    expect(Array.from(feeds.position_ids!.data as BigInt64Array, Number)).toEqual([0, 1, 2, 0, 0, 0]);
    expect(Array.from(feeds.token_type_ids!.data as BigInt64Array, Number)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(feeds.input_ids!.dims).toEqual([2, 3]);
  });

  it('pads left for decoders without shifting positions, and cuts or pads to a fixed length', () => {
    const left = padFeeds([[5, 6, 7], [8]], inputs, { side: 'left' });
    expect(left.starts).toEqual([0, 2]);
    expect(Array.from(left.feeds.input_ids!.data as BigInt64Array, Number)).toEqual([5, 6, 7, 0, 0, 8]);
    expect(Array.from(left.feeds.position_ids!.data as BigInt64Array, Number)).toEqual([0, 1, 2, 0, 0, 0]);
    const fixed = padFeeds([[5, 6, 7], [8]], { names: new Set(['input_ids', 'attention_mask']), int32: new Set() }, { padTo: 2 });
    expect(Array.from(fixed.feeds.input_ids!.data as BigInt64Array, Number)).toEqual([5, 6, 8, 0]);
    expect(Object.keys(fixed.feeds)).toEqual(['input_ids', 'attention_mask']);
  });
});

/** tiny-bert with every integer input declared int32 (onnx via Debian's python3-onnx). */
function int32Copy(): string | null {
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import onnx'], { encoding: 'utf8' });
  if (probe.status !== 0) return null;
  const dir = mkdtempSync(join(tmpdir(), 'int32-model-'));
  cpSync(TINY_BERT, dir, { recursive: true });
  const file = join(dir, 'onnx/model.onnx');
  const script = `import onnx, sys\nm = onnx.load(sys.argv[1])\nfor i in m.graph.input: i.type.tensor_type.elem_type = onnx.TensorProto.INT32\nonnx.save(m, sys.argv[1])`;
  const r = spawnSync('/usr/bin/python3', ['-c', script, file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return dir;
}

const dir = int32Copy();
if (!dir) console.warn('skipping the int32-input model tests: /usr/bin/python3 cannot import onnx (apt install python3-onnx)');

describe.skipIf(!dir)('a graph with int32 inputs', () => {
  let engines: Engine[] = [];
  beforeAll(async () => {
    const session = await ort.InferenceSession.create(join(dir!, 'onnx/model.onnx'));
    // The premise: the copy really declares int32 inputs.
    expect([...graphInputs(session).int32].sort()).toEqual(['attention_mask', 'input_ids', 'token_type_ids']);
  });
  afterAll(async () => {
    await Promise.all(engines.map((e) => e.close()));
    if (dir && existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  });

  it('embeds exactly as the int64 original, through the workers', async () => {
    const texts = ['A man is playing a guitar.', 'short', 'The stock market fell sharply on Monday after the announcement.'];
    engines = [
      await Engine.load({ modelDir: TINY_BERT, workers: 1, intraOpThreads: 1 }),
      await Engine.load({ modelDir: dir!, workers: 1, intraOpThreads: 1 }),
    ];
    const [a, b] = await Promise.all(engines.map((e) => e.embed(texts, {})));
    a!.vectors.forEach((v, i) => expect(cosine(v, b!.vectors[i]!)).toBeGreaterThan(0.999999));
  });

  it('passes the int8 guard, which runs the probe sentences through it', async () => {
    const choice = await choosePrecision(loadModelDir(dir!), 'int8', 0.5);
    expect(choice.fallback).toBeNull();
    expect(choice.precision).toBe('int8');
    expect(choice.agreement).toBeGreaterThan(0.5);
  });
});
