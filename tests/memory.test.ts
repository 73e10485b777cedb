/**
 * Weights resident once: the graph variants a model is served with (unsplit graph, per-layer
 * stages) read their weights from one external-data file, which ONNX Runtime maps, so neither the
 * stages nor a second worker hold a second copy. And capabilities are decided once, before the
 * workers start: every worker serves the stages the description names.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { prepareGraphs } from '../src/runtime/description.js';
import { Engine } from '../src/runtime/engine.js';
import { weightBytes } from '../src/runtime/onnx/external.js';
import { loadModel } from '../src/runtime/onnx/model.js';
import { WorkerPool } from '../src/runtime/pool.js';
import { TINY_BERT as TINY_BERT_DIR } from './helpers.js';
import { TINY_BERT, TINY_DECODER, tempDir } from './onnx/helpers.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A private copy of a fixture model, so the caches written beside it are this test's own. */
function copyModel(file: string): string {
  const dir = tempDir('memory-test-');
  dirs.push(dir);
  const to = path.join(dir, 'model.onnx');
  fs.copyFileSync(file, to);
  return to;
}

describe('graph variants share one copy of the weights', () => {
  for (const [name, file] of [
    ['BERT encoder', TINY_BERT],
    ['decoder', TINY_DECODER],
  ] as const) {
    it(`${name}: stages and unsplit graph together hold the weights once`, async () => {
      const model = copyModel(file);
      // Every initializer of the original graph is inline: this is the size of one copy.
      const original = weightBytes(loadModel(model));
      expect(original.external).toBe(0);
      const graphs = await prepareGraphs(model, true);
      expect(graphs.stages.ok).toBe(true);
      const w = graphs.weights;
      // A stage set that carried its own copy would show it inline here or as a second range.
      expect(w.stages!.shared).toBeGreaterThan(0.9 * original.inline);
      expect(w.stages!.shared + w.stages!.inline).toBeLessThanOrEqual(original.inline * 1.02);
      expect(w.stages!.inline).toBeLessThan(0.1 * original.inline);
      if (w.unsplit) {
        expect(w.unsplit.inline).toBeLessThan(0.1 * original.inline);
        expect(w.unsplit.shared).toBeLessThanOrEqual(w.stages!.shared);
      }
      // One file on disk, at most one copy plus alignment padding.
      const tensors = loadModel(model).graph.initializer.length;
      expect(w.file).toBeLessThanOrEqual(original.inline + tensors * 65536);
      expect(fs.statSync(graphs.weightsFile).size).toBe(w.file);
    });
  }

  it('serves full depth from the stages when the graph ends token-level (no unsplit copy)', async () => {
    const graphs = await prepareGraphs(copyModel(TINY_BERT), true);
    expect(graphs.outputNames).not.toContain('sentence_embedding');
    expect(graphs.unsplit).toBeNull();
    expect(graphs.weights.unsplit).toBeNull();
  });

  it('with layer exit off, the unsplit graph still maps its weights from a shared file', async () => {
    const model = copyModel(TINY_BERT);
    const original = weightBytes(loadModel(model)).inline;
    const graphs = await prepareGraphs(model, false);
    expect(graphs.stages.ok).toBe(false);
    expect(graphs.unsplit).not.toBeNull();
    expect(graphs.weights.unsplit!.inline).toBeLessThan(0.1 * original);
    expect(graphs.weights.unsplit!.shared).toBeGreaterThan(0.9 * original);
  });
});

describe('capabilities are decided before the workers start', () => {
  it('every worker serves the stages the description names (layer requests never depend on which worker runs them)', async () => {
    const engine = await Engine.load({ modelDir: TINY_BERT_DIR, workers: 2, intraOpThreads: 1 });
    try {
      expect(engine.info.stages.ok).toBe(true);
      expect(engine.info.task).toBe('embed');
      // Enough concurrent single-input requests that both workers take some.
      const texts = Array.from({ length: 16 }, (_, i) => `sentence number ${i} about layers`);
      const [full, early] = await Promise.all([
        Promise.all(texts.map((t) => engine.embed([t], {}))),
        Promise.all(texts.map((t) => engine.embed([t], { layer: 2 }))),
      ]);
      for (let i = 0; i < texts.length; i++) {
        expect(full[i]!.vectors[0]!.length).toBe(engine.spec.hiddenSize);
        expect(early[i]!.vectors[0]!.length).toBe(engine.spec.hiddenSize);
        // Layer 2 of 4 is a different vector from full depth.
        const dot = full[i]!.vectors[0]!.reduce((s, v, k) => s + v * early[i]!.vectors[0]![k]!, 0);
        expect(dot).toBeLessThan(0.9999);
      }
    } finally {
      await engine.close();
    }
  });

  it('a worker that cannot load the stages it was given fails to start instead of serving fewer capabilities', async () => {
    const graphs = await prepareGraphs(copyModel(TINY_BERT), true);
    const missing = path.join(tempDir('memory-missing-'), 'nothing-here');
    dirs.push(path.dirname(missing));
    await expect(
      WorkerPool.start({
        model: 'tiny-bert',
        workers: 1,
        worker: {
          memoryArena: false,
          providers: ['cpu'],
          intraOpThreads: 1,
          nice: 0,
          models: [
            {
              task: 'embed',
              graphs: { unsplit: graphs.unsplit, stagesDir: missing },
              pooling: 'mean',
              paddingSide: 'right',
              hiddenSize: 64,
              numLayers: 4,
              finalNormOnExit: false,
              tokenPrepending: null,
            },
          ],
        },
      }),
    ).rejects.toThrow(/manifest\.json|no such file/i);
  });
});
