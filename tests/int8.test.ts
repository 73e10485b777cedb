/** int8 serving: quantized at load, checked against fp32, cached, and refused below the floor. */
import { cpSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type BertReference, cosine, modelVariant, postJson, readReference, startServer, type TestServer, TINY_BERT } from './helpers.js';

const ref = readReference<BertReference>(TINY_BERT);
const servers: TestServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

async function serve(options: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const s = await startServer({ limits: { maxBatchTokens: 4096 }, ...options });
  servers.push(s);
  return s;
}

const info = async (s: TestServer): Promise<Record<string, any>> => (await fetch(`${s.url}/info`)).json() as Promise<Record<string, any>>;

describe('int8 serving', () => {
  const dir = modelVariant(TINY_BERT, {});
  rmSync(join(dir, '.int8'), { recursive: true, force: true });

  it("quantizes at load, agrees with torch's fp32 outputs, and reports the measured agreement", async () => {
    const s = await serve({ modelDir: dir, quantize: 'int8' });
    const i = await info(s);
    expect(i.precision).toBe('int8');
    expect(i.quantization.source).toBe('quantized at load');
    expect(i.quantization.agreement).toBeGreaterThanOrEqual(0.99);
    // Reduced-range weights on every CPU; the worst probe sentence and the CPU facts are reported.
    expect(i.quantization.weight_format).toBe('s8-reduced');
    expect(i.quantization.worst_agreement).toBeGreaterThanOrEqual(0.97);
    expect(i.quantization.worst_agreement).toBeLessThanOrEqual(i.quantization.agreement);
    expect(typeof i.cpu.int8_pair_saturation).toBe('boolean');
    expect(i.cpu.arch).toBe(process.arch);
    const vectors = (await postJson(`${s.url}/embed`, { inputs: ref.sentences })).json as number[][];
    const cos = vectors.map((v, idx) => cosine(v, ref.pooled.mean[idx]!));
    expect(cos.reduce((a, b) => a + b, 0) / cos.length).toBeGreaterThanOrEqual(0.99);
    // The int8 graph really is a different graph: it does not reproduce fp32 bit for bit.
    expect(Math.min(...cos)).toBeLessThan(0.999999);
    const cached = readdirSync(join(dir, 'onnx/.int8'));
    expect(cached).toHaveLength(1);
  });

  it('reuses the cached int8 graph on the next start, and its layer exits match fp32', async () => {
    const s = await serve({ modelDir: dir, quantize: 'int8' });
    expect((await info(s)).quantization.source).toBe('cache');
    for (const layer of [1, 2, 3]) {
      const v = (await postJson(`${s.url}/embed`, { inputs: ref.sentences, layer })).json as number[][];
      v.forEach((x, idx) => expect(cosine(x, ref.layers[layer]!.mean[idx]!)).toBeGreaterThanOrEqual(0.99));
    }
  });

  it('falls back to fp32 with a warning when the floor is above what int8 reaches', async () => {
    const warnings: string[] = [];
    const s = await serve({
      modelDir: dir,
      quantize: 'int8',
      quantizeFloor: 1.01,
      log: (level, m) => level === 'warn' && warnings.push(m),
    });
    const i = await info(s);
    expect(i.precision).toBe('fp32');
    expect(i.quantization.fallback).toMatch(/under the floor 1\.01/);
    expect(warnings.some((w) => /serving fp32/.test(w))).toBe(true);
    const v = (await postJson(`${s.url}/embed`, { inputs: ref.sentences[1] })).json as number[][];
    expect(cosine(v[0]!, ref.pooled.mean[1]!)).toBeGreaterThanOrEqual(0.9999);
  });

  it("serves a directory's own model_quantized.onnx as it is", async () => {
    const shipped = modelVariant(TINY_BERT, {});
    const first = await serve({ modelDir: dir, quantize: 'int8' });
    await first.close();
    servers.splice(servers.indexOf(first), 1);
    const [key] = readdirSync(join(dir, 'onnx/.int8'));
    cpSync(join(dir, 'onnx/.int8', key!, 'model_quantized.onnx'), join(shipped, 'onnx/model_quantized.onnx'));
    const s = await serve({ modelDir: shipped, quantize: 'int8' });
    expect((await info(s)).quantization.source).toBe('model directory');
    expect(existsSync(join(shipped, 'onnx/.int8'))).toBe(false);
    const byVariant = await serve({ modelDir: shipped, variant: 'quantized' });
    expect((await info(byVariant)).precision).toBe('int8');
  });
});
