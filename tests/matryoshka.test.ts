/**
 * 2D Matryoshka (layer × dimensions), prompts and instructions, and Token Prepending, through the
 * service, against torch's own per-layer outputs and an independent Token Prepending forward pass.
 */
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModelDir } from '../src/runtime/model-dir.js';
import { loadModel, saveModel } from '../src/runtime/onnx/model.js';
import { TextTokenizer } from '../src/runtime/tokenize.js';
import {
  type BertReference,
  cosine,
  modelVariant,
  normalized,
  postJson,
  readReference,
  startServer,
  type TestServer,
  TINY_BERT,
  TINY_DECODER,
} from './helpers.js';

interface DecoderReference {
  sentences: string[];
  token_ids: number[][];
  pooled: { last: number[][] };
  layers: Record<string, { last_raw: number[][]; last_normed: number[][] }>;
  token_prepending: { token_ids: number[][]; last: number[][] };
}

const bert = readReference<BertReference>(TINY_BERT);
const dec = readReference<DecoderReference>(TINY_DECODER);
const servers: TestServer[] = [];
let bertMean: TestServer;
let bertCls: TestServer;
let decoder: TestServer;
let decoderRaw: TestServer;

beforeAll(async () => {
  bertMean = await startServer({ modelDir: TINY_BERT, limits: { maxBatchTokens: 4096 } });
  bertCls = await startServer({
    modelDir: modelVariant(TINY_BERT, { 'embedder.json': '{"pooling": "cls"}' }),
    limits: { maxBatchTokens: 4096 },
  });
  decoder = await startServer({ modelDir: TINY_DECODER, limits: { maxBatchTokens: 4096 } });
  const rawEmbedder = JSON.stringify({
    pooling: 'last',
    final_norm_on_exit: false,
    token_prepending: { placeholder: '<|pst|>', first_layer: 1, last_layer: 3 },
  });
  decoderRaw = await startServer({
    modelDir: modelVariant(TINY_DECODER, { 'embedder.json': rawEmbedder }),
    limits: { maxBatchTokens: 4096 },
  });
  servers.push(bertMean, bertCls, decoder, decoderRaw);
});
afterAll(async () => {
  for (const s of servers) await s.close();
});

const embed = async (s: TestServer, body: Record<string, unknown>): Promise<number[][]> => {
  const res = await postJson(`${s.url}/embed`, body);
  expect(res.status, JSON.stringify(res.json)).toBe(200);
  return res.json as number[][];
};

describe('layer exit (2D Matryoshka depth)', () => {
  for (const layer of [1, 2, 3, 4]) {
    it(`encoder layer ${layer} matches torch's hidden state of that layer, mean and CLS pooled`, async () => {
      const mean = await embed(bertMean, { inputs: bert.sentences, layer });
      const cls = await embed(bertCls, { inputs: bert.sentences, layer });
      mean.forEach((v, i) => expect(cosine(v, bert.layers[layer]!.mean[i]!)).toBeGreaterThanOrEqual(0.9999));
      cls.forEach((v, i) => expect(cosine(v, bert.layers[layer]!.cls[i]!)).toBeGreaterThanOrEqual(0.9999));
    });
  }

  it('earlier layers really differ from the last (the exit is not ignored)', async () => {
    const l1 = await embed(bertMean, { inputs: bert.sentences[1], layer: 1 });
    const l4 = await embed(bertMean, { inputs: bert.sentences[1] });
    expect(cosine(l1[0]!, l4[0]!)).toBeLessThan(0.99);
  });

  it('dimensions with layer is the renormalized prefix of that layer', async () => {
    const v = await embed(bertMean, { inputs: bert.sentences, layer: 2, dimensions: 24 });
    v.forEach((x, i) => {
      expect(x).toHaveLength(24);
      expect(cosine(x, normalized(bert.layers['2']!.mean[i]!, 24))).toBeGreaterThanOrEqual(0.9999);
    });
  });

  it('decoder: full depth under left padding matches torch, and exits apply the final norm as configured', async () => {
    const full = await embed(decoder, { inputs: dec.sentences });
    full.forEach((v, i) => expect(cosine(v, dec.pooled.last[i]!)).toBeGreaterThanOrEqual(0.9999));
    for (const layer of [1, 2, 3]) {
      const normed = await embed(decoder, { inputs: dec.sentences, layer });
      const raw = await embed(decoderRaw, { inputs: dec.sentences, layer });
      normed.forEach((v, i) => expect(cosine(v, dec.layers[layer]!.last_normed[i]!)).toBeGreaterThanOrEqual(0.9999));
      raw.forEach((v, i) => expect(cosine(v, dec.layers[layer]!.last_raw[i]!)).toBeGreaterThanOrEqual(0.9999));
    }
  });

  it('reports the stages in /info', async () => {
    const info = (await (await fetch(`${bertMean.url}/info`)).json()) as { layer_exit: { available: boolean } };
    expect(info.layer_exit.available).toBe(true);
  });
});

describe('Token Prepending', () => {
  it('matches an independent torch implementation and differs from plain last-token pooling', async () => {
    const tp = await embed(decoder, { inputs: dec.sentences, token_prepending: true });
    const plain = await embed(decoder, { inputs: dec.sentences });
    tp.forEach((v, i) => expect(cosine(v, dec.token_prepending.last[i]!)).toBeGreaterThanOrEqual(0.9999));
    const gaps = tp.map((v, i) => cosine(v, plain[i]!));
    expect(Math.min(...gaps)).toBeLessThan(0.99);
  });

  it('counts the placeholder token in usage', async () => {
    const a = await postJson(`${decoder.url}/embed`, { inputs: dec.sentences[1], token_prepending: true });
    const b = await postJson(`${decoder.url}/embed`, { inputs: dec.sentences[1] });
    expect(Number(a.headers.get('x-compute-tokens'))).toBe(Number(b.headers.get('x-compute-tokens')) + 1);
    expect(Number(b.headers.get('x-compute-tokens'))).toBe(dec.token_ids[1]!.length);
  });

  it('is a 422 on an encoder', async () => {
    const res = await postJson(`${bertMean.url}/embed`, { inputs: 'x', token_prepending: true });
    expect(res.status).toBe(422);
    expect(res.json.error_code).toBe('TOKEN_PREPENDING_UNSUPPORTED');
  });
});

describe('prompts and instructions', () => {
  it('instruction equals embedding the template-formatted text, with prompt tokens counted', async () => {
    const a = await postJson(`${decoder.url}/embed`, { inputs: 'where is paris', instruction: 'find the city' });
    const b = await postJson(`${decoder.url}/embed`, { inputs: 'Instruct: find the city\nQuery: where is paris' });
    expect(cosine(a.json[0], b.json[0])).toBeGreaterThan(0.99999);
    const plain = await postJson(`${decoder.url}/embed`, { inputs: 'where is paris' });
    expect(Number(a.headers.get('x-compute-tokens'))).toBeGreaterThan(Number(plain.headers.get('x-compute-tokens')));
  });

  it('include_prompt: false leaves the prompt tokens out of mean pooling (checked against raw ONNX Runtime)', async () => {
    const dir = modelVariant(TINY_BERT, { '1_Pooling/config.json': '{"pooling_mode_mean_tokens": true, "include_prompt": false}' });
    const s = await startServer({ modelDir: dir });
    servers.push(s);
    const text = bert.sentences[2]!;
    const [served] = await embed(s, { inputs: text, prompt_name: 'query' });
    // Independent: run the graph directly and average the states after the prompt by hand.
    const spec = loadModelDir(dir);
    const [withPrompt] = await new TextTokenizer(spec).tokenize([`query: ${text}`], {
      prefix: null,
      instruction: null,
      truncate: true,
      direction: 'right',
      tokenPrepending: false,
    });
    // sentence-transformers' prompt length: the prompt tokenized alone, minus its trailing [SEP]. For
    // "query: " in tiny-bert's vocab.txt that is [CLS] query : = 3 (counted by hand, not by the code here).
    const skip = 3;
    expect(Array.from(withPrompt!.ids.slice(0, skip))).toEqual([2, 644, 56]); // vocab.txt lines 3, 645, 57
    const n = withPrompt!.ids.length;
    const session = await ort.InferenceSession.create(spec.onnxPath);
    const ids = BigInt64Array.from(withPrompt!.ids, (x) => BigInt(x));
    const out = await session.run({
      input_ids: new ort.Tensor('int64', ids, [1, n]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
      token_type_ids: new ort.Tensor('int64', new BigInt64Array(n), [1, n]),
    });
    const h = out.last_hidden_state!.data as Float32Array;
    const mean = new Array<number>(64).fill(0);
    for (let t = skip; t < n; t++) for (let d = 0; d < 64; d++) mean[d]! += h[t * 64 + d]! / (n - skip);
    expect(cosine(served!, mean)).toBeGreaterThanOrEqual(0.9999);
    // And it is not what pooling over every token gives.
    const [all] = await embed(bertMean, { inputs: text, prompt_name: 'query' });
    expect(cosine(served!, all!)).toBeLessThan(0.9999);
    await session.release();
  });
});

describe('a graph that cannot be split', () => {
  it('serves full depth and answers layer with a 422 that says why', async () => {
    const dir = modelVariant(TINY_BERT, {});
    // Strip the module scopes from every node and tensor name: nothing says where a layer starts.
    const path = join(dir, 'onnx/model.onnx');
    const model = loadModel(path);
    const keep = new Set(model.graph.output.map((o) => o.name));
    const renamed = new Map<string, string>();
    model.graph.node.forEach((n, i) => {
      n.name = `node_${i}`;
      n.output = n.output.map((o, j) => {
        if (keep.has(o)) return o;
        renamed.set(o, `t${i}_${j}`);
        return `t${i}_${j}`;
      });
    });
    for (const n of model.graph.node) n.input = n.input.map((x) => renamed.get(x) ?? x);
    saveModel(model, path);
    const s = await startServer({ modelDir: dir });
    servers.push(s);
    const full = await embed(s, { inputs: bert.sentences });
    full.forEach((v, i) => expect(cosine(v, bert.pooled.mean[i]!)).toBeGreaterThanOrEqual(0.9999));
    const res = await postJson(`${s.url}/embed`, { inputs: 'x', layer: 2 });
    expect(res.status).toBe(422);
    expect(res.json.error_code).toBe('LAYER_EXIT_UNAVAILABLE');
    const info = (await (await fetch(`${s.url}/info`)).json()) as { layer_exit: { available: boolean; reason: string } };
    expect(info.layer_exit.available).toBe(false);
    expect(info.layer_exit.reason).toBeTruthy();
  });
});

describe('invalid combinations are 422 with a clear message', () => {
  it('rejects layers and dimensions the model does not list', async () => {
    const dir = modelVariant(TINY_BERT, { 'embedder.json': '{"matryoshka_dimensions": [16, 32, 64], "exit_layers": [2, 4]}' });
    const s = await startServer({ modelDir: dir });
    servers.push(s);
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ layer: 3 }, 'LAYER_NOT_ALLOWED', /layer must be one of 2, 4/],
      [{ layer: 0 }, 'REQUEST_VALIDATION', /layer/],
      [{ layer: 5 }, 'LAYER_OUT_OF_RANGE', /1\.\.4/],
      [{ dimensions: 20 }, 'DIMENSIONS_NOT_ALLOWED', /dimensions must be one of 16, 32, 64/],
      [{ dimensions: 16, layer: 1 }, 'LAYER_NOT_ALLOWED', /layer must be one of 2, 4/],
      [{ prompt_name: 'query', instruction: 'x' }, 'PROMPT_AND_INSTRUCTION', /not both/],
      [{ token_prepending: true }, 'TOKEN_PREPENDING_UNSUPPORTED', /token_prepending/],
    ];
    for (const [knobs, code, message] of cases) {
      const res = await postJson(`${s.url}/embed`, { inputs: 'x', ...knobs });
      expect(res.status, JSON.stringify(knobs)).toBe(422);
      expect(res.json.error_code, JSON.stringify(knobs)).toBe(code);
      expect(res.json.error).toMatch(message);
    }
    expect((await postJson(`${s.url}/embed`, { inputs: 'x', dimensions: 16, layer: 2 })).status).toBe(200);
  });
});
