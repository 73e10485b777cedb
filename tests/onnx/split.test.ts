import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureStages, NotSplittableError, writeStages } from '../../src/runtime/onnx/cache.js';
import { loadModel } from '../../src/runtime/onnx/model.js';
import { DataType, type ModelProto, makeModel, type NodeProto, NodeProtoSchema } from '../../src/runtime/onnx/proto.js';
import { layerScopeOf, splitModel } from '../../src/runtime/onnx/split.js';
import { StagedRunner } from '../../src/runtime/onnx/staged.js';
import { makeTensor, makeValueInfo, tensorTypeOf } from '../../src/runtime/onnx/tensor.js';
import {
  type BertReference,
  cosine,
  DEFAULT_MODEL,
  type DecoderReference,
  lastToken,
  makeBatch,
  maxAbsDiff,
  meanPool,
  readReference,
  SESSION_OPTIONS,
  TINY_BERT,
  TINY_BERT_DIR,
  TINY_DECODER,
  TINY_DECODER_DIR,
  tempDir,
} from './helpers.js';

const bertRef = readReference<BertReference>(TINY_BERT_DIR);
const decoderRef = readReference<DecoderReference>(TINY_DECODER_DIR);
const cache = tempDir('stages-');
afterAll(() => fs.rmSync(cache, { recursive: true, force: true }));

describe('layer scopes', () => {
  it('recognizes the usual exporters’ module paths', () => {
    expect(layerScopeOf('/encoder/layer.3/attention/self/MatMul')).toEqual({ container: '/encoder/layer.', index: 3 });
    expect(layerScopeOf('/model/layers.11/mlp/down_proj/MatMul')).toEqual({ container: '/model/layers.', index: 11 });
    expect(layerScopeOf('/h.0/attn/Add')).toEqual({ container: '/h.', index: 0 });
    expect(layerScopeOf('/transformer/h.2/mlp/Mul')).toEqual({ container: '/transformer/h.', index: 2 });
    expect(layerScopeOf('/encoder/layers.5/Add')).toEqual({ container: '/encoder/layers.', index: 5 });
    expect(layerScopeOf('/embeddings/LayerNorm/LayerNormalization')).toBeNull();
    expect(layerScopeOf('Constant_12')).toBeNull();
    expect(layerScopeOf('/Sub')).toBeNull();
  });
});

interface Case {
  name: string;
  file: string;
  side: 'right' | 'left';
  ids: number[][];
}
const CASES: Case[] = [
  { name: 'tiny-bert', file: TINY_BERT, side: 'right', ids: bertRef.token_ids },
  { name: 'tiny-decoder', file: TINY_DECODER, side: 'left', ids: decoderRef.token_ids },
  // models/default shares tiny-bert's vocabulary.
  { name: 'models/default', file: DEFAULT_MODEL, side: 'right', ids: bertRef.token_ids },
];

describe.each(CASES)('split $name', ({ file, side, ids }) => {
  let runner: StagedRunner;
  let full: ort.InferenceSession;
  beforeAll(async () => {
    runner = await StagedRunner.fromModel(file, SESSION_OPTIONS, cache);
    full = await ort.InferenceSession.create(file, SESSION_OPTIONS);
  });
  afterAll(async () => {
    await runner?.release();
    await full?.release();
  });

  it('has a prefix, one stage per layer, and names the hidden state after every layer', () => {
    const m = runner.manifest;
    const prefixOutputs = new Set(m.stages[0]!.outputs);
    expect(m.numLayers).toBe(4);
    expect(m.stages[0]!.kind).toBe('prefix');
    expect(m.stages.filter((s) => s.kind === 'layer').map((s) => s.layer)).toEqual([1, 2, 3, 4]);
    expect(m.hiddenStates).toHaveLength(5);
    for (let k = 1; k <= 4; k++) {
      const layer = m.stages.find((s) => s.layer === k)!;
      expect(layer.outputs).toContain(m.hiddenStates[k]);
      if (k < 4) expect(m.stages.find((s) => s.layer === k + 1)!.inputs).toContain(m.hiddenStates[k]);
      // A layer reads the previous hidden state and prefix context only.
      expect(layer.inputs.filter((n) => n !== m.hiddenStates[k - 1] && !prefixOutputs.has(n))).toEqual([]);
    }
    expect(m.notes).toEqual([]);
  });

  it('running every stage equals the unsplit graph on a padded batch', async () => {
    const batch = makeBatch(ids, side, full.inputNames);
    const expected = (await full.run(batch.feeds)).last_hidden_state!;
    const got = await runner.run(batch.feeds);
    expect(got.dims).toEqual(expected.dims);
    expect(maxAbsDiff(got.data as Float32Array, expected.data as Float32Array)).toBeLessThanOrEqual(1e-5);
  });

  it('exiting at layer k runs the prefix and k layers only', async () => {
    const batch = makeBatch(ids.slice(0, 2), side, full.inputNames);
    for (let k = 1; k <= 4; k++) {
      for (const applySuffix of [false, true]) {
        const before = [...runner.stageRuns];
        await runner.run(batch.feeds, { exitLayer: k, applySuffix });
        const ran = runner.stageRuns.map((n, i) => n - before[i]!);
        const expected = runner.manifest.stages.map((s) =>
          s.kind === 'prefix' || (s.kind === 'layer' && s.layer <= k) || (s.kind === 'suffix' && applySuffix) ? 1 : 0,
        );
        expect(ran).toEqual(expected);
      }
    }
  });
});

describe('layer exit matches torch', () => {
  it('BERT: mean-pooled state after layer k matches reference layers[k].mean', async () => {
    const runner = await StagedRunner.fromModel(TINY_BERT, SESSION_OPTIONS, cache);
    try {
      const batch = makeBatch(bertRef.token_ids, 'right', runner.inputNames);
      for (let k = 1; k <= 4; k++) {
        const pooled = meanPool(await runner.run(batch.feeds, { exitLayer: k }), batch);
        pooled.forEach((v, i) => expect(cosine(v, bertRef.layers[String(k)]!.mean[i]!)).toBeGreaterThanOrEqual(0.9999));
        // And the state really differs between layers (the test could fail).
        if (k < 4) expect(cosine(pooled[0]!, bertRef.layers[String(k + 1)]!.mean[0]!)).toBeLessThan(0.9999);
      }
    } finally {
      await runner.release();
    }
  });

  it('decoder: last token after layer k matches last_raw without the suffix and last_normed with it', async () => {
    const runner = await StagedRunner.fromModel(TINY_DECODER, SESSION_OPTIONS, cache);
    try {
      expect(runner.manifest.stages.at(-1)!.kind).toBe('suffix');
      const batch = makeBatch(decoderRef.token_ids, 'left', runner.inputNames);
      for (let k = 1; k <= 4; k++) {
        const raw = lastToken(await runner.run(batch.feeds, { exitLayer: k, applySuffix: false }), batch);
        const normed = lastToken(await runner.run(batch.feeds, { exitLayer: k, applySuffix: true }), batch);
        const ref = decoderRef.layers[String(k)]!;
        raw.forEach((v, i) => expect(cosine(v, ref.last_raw[i]!)).toBeGreaterThanOrEqual(0.9999));
        normed.forEach((v, i) => expect(cosine(v, ref.last_normed[i]!)).toBeGreaterThanOrEqual(0.9999));
        normed.forEach((v, i) => expect(maxAbsDiff(v, ref.last_normed[i]!)).toBeLessThan(1e-3));
      }
    } finally {
      await runner.release();
    }
  });

  it('decoder: afterLayer replaces the hidden state the next layer reads (token prepending)', async () => {
    const runner = await StagedRunner.fromModel(TINY_DECODER, SESSION_OPTIONS, cache);
    const tp = decoderRef.token_prepending;
    try {
      const batch = makeBatch(tp.token_ids, 'left', runner.inputNames);
      const seen: number[] = [];
      const out = await runner.run(batch.feeds, {
        afterLayer: (layer, hidden) => {
          seen.push(layer);
          if (layer < tp.first_layer || layer > tp.last_layer) return;
          const [, S, H] = hidden.dims as number[];
          const data = (hidden.data as Float32Array).slice();
          batch.lengths.forEach((len, b) => {
            const first = (b * S! + batch.starts[b]!) * H!;
            const last = (b * S! + batch.starts[b]! + len - 1) * H!;
            data.copyWithin(first, last, last + H!);
          });
          return new ort.Tensor('float32', data, hidden.dims);
        },
      });
      expect(seen).toEqual([1, 2, 3, 4]);
      const got = lastToken(out, batch);
      got.forEach((v, i) => expect(cosine(v, tp.last[i]!)).toBeGreaterThanOrEqual(0.9999));
      // Editing the tensor in place (returning nothing) is the same.
      const inPlace = await runner.run(batch.feeds, {
        afterLayer: (layer, hidden) => {
          if (layer < tp.first_layer || layer > tp.last_layer) return;
          const [, S, H] = hidden.dims as number[];
          const data = hidden.data as Float32Array;
          batch.lengths.forEach((len, b) => {
            const first = (b * S! + batch.starts[b]!) * H!;
            data.copyWithin(first, first + (len - 1) * H!, first + len * H!);
          });
        },
      });
      expect(maxAbsDiff(inPlace.data as Float32Array, out.data as Float32Array)).toBe(0);
      // Without the hook the answer is measurably different, so the replacement mattered.
      const plain = lastToken(await runner.run(batch.feeds), batch);
      expect(Math.min(...plain.map((v, i) => cosine(v, tp.last[i]!)))).toBeLessThan(0.999);
    } finally {
      await runner.release();
    }
  });
});

function matmul(name: string, input: string[], output: string[]): NodeProto {
  return create(NodeProtoSchema, { name, opType: 'MatMul', input, output });
}

/** A one-MatMul model built with the codec. */
function matmulModel(): ModelProto {
  const w = new Float32Array(16).map((_, i) => i / 16);
  return makeModel({
    irVersion: 8n,
    opsetImport: [{ domain: '', version: 17n }],
    producerName: 'test',
    graph: {
      name: 'g',
      node: [{ name: '/MatMul', opType: 'MatMul', input: ['x', 'w'], output: ['y'] }],
      initializer: [makeTensor('w', DataType.FLOAT, [4, 4], w)],
      input: [makeValueInfo('x', DataType.FLOAT, ['n', 4])],
      output: [makeValueInfo('y', DataType.FLOAT, ['n', 4])],
    },
  });
}

describe('not splittable', () => {
  it('reports a graph with no layer scopes, and ensureStages throws a clear error', async () => {
    const model = matmulModel();
    const result = splitModel(model);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(/^not splittable: no layer scopes/);

    const dir = tempDir('nosplit-');
    try {
      const { saveModel } = await import('../../src/runtime/onnx/model.js');
      saveModel(model, path.join(dir, 'model.onnx'));
      // The model itself is fine: ORT runs it.
      const s = await ort.InferenceSession.create(path.join(dir, 'model.onnx'));
      await s.release();
      await expect(ensureStages(path.join(dir, 'model.onnx'), path.join(dir, 'cache'))).rejects.toThrow(NotSplittableError);
      await expect(ensureStages(path.join(dir, 'model.onnx'), path.join(dir, 'cache'))).rejects.toThrow(/not splittable: no layer scopes/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports layers that feed an earlier layer (a cycle between groups)', () => {
    const model = matmulModel();
    const w = model.graph.initializer[0]!;
    // layer 0 → layer 1 → layer 0 again.
    model.graph.node = [
      matmul('/layers.0/MatMul', ['x', 'w'], ['a']),
      matmul('/layers.1/MatMul', ['a', 'w'], ['b']),
      matmul('/layers.0/MatMul_1', ['b', 'w'], ['y']),
    ];
    model.graph.initializer = [w];
    const result = splitModel(model);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(/cycle/);
  });

  it('reports layer stacks under two containers', () => {
    const model = matmulModel();
    model.graph.node = [matmul('/encoder/layer.0/MatMul', ['x', 'w'], ['a']), matmul('/decoder/layer.0/MatMul', ['a', 'w'], ['y'])];
    const result = splitModel(model);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(/several containers/);
  });
});

describe('split without ONNX Runtime types', () => {
  it('types every boundary by static propagation and still runs identically', async () => {
    const result = splitModel(loadModel(TINY_DECODER));
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.manifest.notes).toEqual([]);
    for (const s of result.stages) for (const input of s.model.graph.input) expect(tensorTypeOf(input.type)?.elemType).toBeGreaterThan(0);
    const dir = tempDir('static-stages-');
    const runner = await (async () => {
      writeStages(result, dir);
      return StagedRunner.create(dir, SESSION_OPTIONS);
    })();
    const full = await ort.InferenceSession.create(TINY_DECODER, SESSION_OPTIONS);
    try {
      const batch = makeBatch(decoderRef.token_ids, 'left', full.inputNames);
      const expected = (await full.run(batch.feeds)).last_hidden_state!;
      expect(maxAbsDiff((await runner.run(batch.feeds)).data as Float32Array, expected.data as Float32Array)).toBeLessThanOrEqual(1e-5);
    } finally {
      await runner.release();
      await full.release();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps every initializer in exactly the stages that read it', () => {
    const model = loadModel(TINY_BERT);
    const result = splitModel(model);
    if (!result.ok) throw new Error(result.reason);
    const counts = new Map<string, number>();
    for (const s of result.stages) {
      const read = new Set(s.model.graph.node.flatMap((n) => n.input));
      for (const t of s.model.graph.initializer) {
        expect(read.has(t.name!)).toBe(true);
        counts.set(t.name!, (counts.get(t.name!) ?? 0) + 1);
      }
    }
    // No weight is shared between layers in BERT: each initializer appears once, none is lost.
    expect([...counts.values()].every((c) => c === 1)).toBe(true);
    expect(counts.size).toBe(model.graph.initializer.length);
  });
});

describe('stage cache', () => {
  it('splits once, reuses the directory, and re-splits (pruning the old key) when the model changes', async () => {
    const dir = tempDir('cache-model-');
    try {
      const onnx = path.join(dir, 'model.onnx');
      fs.copyFileSync(TINY_BERT, onnx);
      const first = await ensureStages(onnx);
      expect(first.reused).toBe(false);
      expect(path.dirname(first.dir)).toBe(path.join(dir, '.stages'));
      expect(fs.existsSync(path.join(first.dir, 'manifest.json'))).toBe(true);
      for (const s of first.manifest.stages) expect(fs.existsSync(path.join(first.dir, s.file))).toBe(true);
      const second = await ensureStages(onnx);
      expect(second).toMatchObject({ dir: first.dir, reused: true });

      const later = new Date(Date.now() + 5000);
      fs.utimesSync(onnx, later, later);
      const third = await ensureStages(onnx);
      expect(third.reused).toBe(false);
      expect(third.dir).not.toBe(first.dir);
      expect(fs.existsSync(first.dir)).toBe(false);
      expect(third.manifest.source?.file).toBe(onnx);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('falls back to a directory under os.tmpdir() when <model dir>/.stages cannot be created', async () => {
    const dir = tempDir('cache-ro-');
    let fallback: string | undefined;
    try {
      const onnx = path.join(dir, 'model.onnx');
      fs.copyFileSync(TINY_BERT, onnx);
      // A file where the cache directory would go (root ignores permission bits, so this is how
      // a test makes the model directory unusable).
      fs.writeFileSync(path.join(dir, '.stages'), 'not a directory');
      const result = await ensureStages(onnx);
      fallback = path.dirname(result.dir);
      expect(result.dir.startsWith(path.join(os.tmpdir(), 'onnx-stages'))).toBe(true);
      expect(result.reused).toBe(false);
      expect((await ensureStages(onnx)).reused).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      if (fallback) fs.rmSync(fallback, { recursive: true, force: true });
    }
  });

  it('concurrent starts agree on one directory', async () => {
    const dir = tempDir('cache-race-');
    try {
      const onnx = path.join(dir, 'model.onnx');
      fs.copyFileSync(TINY_DECODER, onnx);
      const results = await Promise.all([ensureStages(onnx), ensureStages(onnx), ensureStages(onnx)]);
      expect(new Set(results.map((r) => r.dir)).size).toBe(1);
      expect(fs.readdirSync(path.join(dir, '.stages'))).toEqual([path.basename(results[0]!.dir)]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
