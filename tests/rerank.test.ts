/**
 * Several models in one process and cross-encoder reranking, against torch's own outputs
 * (tools/make_test_models.py: tiny-reranker logits for fixed pairs, tiny-bert and tiny-decoder
 * pooled vectors).
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModelDir, ModelDirError } from '../src/runtime/model-dir.js';
import type { Models } from '../src/runtime/models.js';
import { TextTokenizer } from '../src/runtime/tokenize.js';
import {
  type BertReference,
  cosine,
  modelVariant,
  postJson,
  putJson,
  readReference,
  startModelsServer,
  type TestServer,
  TINY_BERT,
  TINY_DECODER,
  TINY_RERANKER,
} from './helpers.js';

interface RerankReference {
  max_length: number;
  queries: string[];
  documents: string[];
  pairs: Array<{
    query: number;
    document: number;
    token_ids: number[];
    token_type_ids: number[];
    truncated: boolean;
    logit: number;
    score: number;
  }>;
}

interface DecoderReference {
  sentences: string[];
  pooled: { last: number[][] };
}

const rr = readReference<RerankReference>(TINY_RERANKER);
const bert = readReference<BertReference>(TINY_BERT);
const dec = readReference<DecoderReference>(TINY_DECODER);
const pairsOf = (q: number) => rr.pairs.filter((p) => p.query === q);
/** Document indices of query q, best first by torch's logit. */
const torchOrder = (q: number): number[] => [...pairsOf(q)].sort((a, b) => b.logit - a.logit).map((p) => p.document);

describe('reranker model directories', () => {
  it('detects a sequence-classification export as a reranker, and embedder.json task overrides', () => {
    expect(loadModelDir(TINY_RERANKER).task).toBe('rerank');
    expect(loadModelDir(TINY_BERT).task).toBe('embed');
    expect(loadModelDir(modelVariant(TINY_BERT, { 'embedder.json': '{"task": "rerank"}' })).task).toBe('rerank');
    expect(() => loadModelDir(modelVariant(TINY_BERT, { 'embedder.json': '{"task": "classify"}' }))).toThrow(/task must be/);
  });

  it('refuses a classifier with more than one label: a reranker has one logit per pair', () => {
    const cfg = JSON.parse(readFileSync(`${TINY_RERANKER}/config.json`, 'utf8')) as Record<string, unknown>;
    const two = { ...cfg, id2label: { 0: 'NO', 1: 'YES' }, num_labels: 2 };
    expect(() => loadModelDir(modelVariant(TINY_RERANKER, { 'config.json': JSON.stringify(two) }))).toThrow(ModelDirError);
    expect(() => loadModelDir(modelVariant(TINY_RERANKER, { 'config.json': JSON.stringify(two) }))).toThrow(/2 labels/);
  });

  it('tokenizes pairs exactly as the Python reference: [CLS] q [SEP] d [SEP], token types 0 then 1, the document cut first', async () => {
    const tok = new TextTokenizer(loadModelDir(TINY_RERANKER));
    for (const q of [0, 1]) {
      const pairs = pairsOf(q);
      const out = await tok.tokenizePairs(
        rr.queries[q]!,
        pairs.map((p) => rr.documents[p.document]!),
        { truncate: true },
      );
      out.forEach((t, i) => {
        const ref = pairs[i]!;
        expect(Array.from(t.ids)).toEqual(ref.token_ids);
        expect(t.segment).toBe(ref.token_type_ids.indexOf(1));
      });
    }
    const truncated = rr.pairs.find((p) => p.truncated)!;
    expect(truncated.token_ids.length).toBe(rr.max_length);
    // The query is kept whole: the cut falls in the document.
    expect(truncated.token_type_ids.indexOf(1)).toBeGreaterThan(rr.queries[truncated.query]!.split(' ').length);
    await expect(
      tok.tokenizePairs(rr.queries[truncated.query]!, [rr.documents[truncated.document]!], { truncate: false }),
    ).rejects.toMatchObject({
      code: 'INPUT_TOO_LONG',
    });
    // A query that alone overflows the budget is cut too rather than refused.
    const [long] = await tok.tokenizePairs('word '.repeat(200), ['a short document'], { truncate: true });
    expect(long!.ids.length).toBe(rr.max_length);
    expect(long!.segment).toBeLessThan(rr.max_length);
  });
});

describe('several models in one process', () => {
  let server: TestServer & { models: Models };

  beforeAll(async () => {
    server = await startModelsServer(
      [
        { name: 'bert', dir: TINY_BERT },
        { name: 'decoder', dir: TINY_DECODER },
        { name: 'ranker', dir: TINY_RERANKER },
      ],
      { workers: 1, intraOpThreads: 1, limits: { maxBatchTokens: 4096 } },
      {},
      { store: true },
    );
  }, 120_000);
  afterAll(async () => server?.close());

  it('scores pairs as torch does (sigmoid of the logit, within 1e-4) in the same order, batched with other requests', async () => {
    const before = server.models.get('ranker')!.stats.batches;
    const rerankTei = (q: number) => postJson(`${server.url}/rerank`, { query: rr.queries[q], texts: rr.documents, return_text: true });
    const rerankCohere = (q: number) =>
      postJson(`${server.url}/v1/rerank`, { model: 'ranker', query: rr.queries[q], documents: rr.documents, return_documents: true });
    const embeds = Array.from({ length: 6 }, (_, i) =>
      postJson(`${server.url}/embed`, { inputs: bert.sentences.slice(i, i + 3), model: 'bert' }),
    );
    const requests = Array.from({ length: 8 }, (_, i) => (i % 2 ? rerankCohere(i % 4 === 1 ? 0 : 1) : rerankTei(i % 4 === 0 ? 0 : 1)));
    const [tei0, cohere0, tei1, cohere1, ...rest] = await Promise.all([...requests, ...embeds]);
    for (const r of [tei0, cohere0, tei1, cohere1, ...rest]) expect(r!.status).toBe(200);
    // Fewer batches than requests: pairs of different requests shared batches.
    expect(server.models.get('ranker')!.stats.batches - before).toBeLessThan(8);

    for (const [q, tei, cohere] of [
      [0, tei0!, cohere0!],
      [1, tei1!, cohere1!],
    ] as const) {
      const ref = new Map(pairsOf(q).map((p) => [p.document, p]));
      expect(tei.json.map((h: { index: number }) => h.index)).toEqual(torchOrder(q));
      for (const hit of tei.json as Array<{ index: number; score: number; text: string }>) {
        expect(Math.abs(hit.score - ref.get(hit.index)!.score)).toBeLessThan(1e-4);
        expect(hit.text).toBe(rr.documents[hit.index]);
      }
      expect(cohere.json.model).toBe('ranker');
      expect(cohere.json.results.map((h: { index: number }) => h.index)).toEqual(torchOrder(q));
      for (const hit of cohere.json.results as Array<{ index: number; relevance_score: number; document: { text: string } }>) {
        expect(Math.abs(hit.relevance_score - ref.get(hit.index)!.score)).toBeLessThan(1e-4);
        expect(hit.document.text).toBe(rr.documents[hit.index]);
      }
      expect(cohere.json.usage.total_tokens).toBe(pairsOf(q).reduce((n, p) => n + p.token_ids.length, 0));
    }
  });

  it('raw_scores gives the logits; top_n and return_documents shape the Cohere answer', async () => {
    const raw = await postJson(`${server.url}/rerank`, { query: rr.queries[1], texts: rr.documents, raw_scores: true });
    const ref = new Map(pairsOf(1).map((p) => [p.document, p]));
    for (const hit of raw.json as Array<{ index: number; score: number; text?: string }>) {
      expect(Math.abs(hit.score - ref.get(hit.index)!.logit)).toBeLessThan(1e-4);
      expect(hit.text).toBeUndefined();
    }
    const top = await postJson(`${server.url}/v1/rerank`, {
      query: rr.queries[1],
      documents: rr.documents.map((text) => ({ text })),
      top_n: 2,
    });
    expect(top.status).toBe(200);
    expect(top.json.results.map((h: { index: number }) => h.index)).toEqual(torchOrder(1).slice(0, 2));
    expect(top.json.results[0].document).toBeUndefined();
  });

  it('serves two embedding models at once, each matching its own reference under interleaved load', async () => {
    const jobs = Array.from({ length: 24 }, (_, i) => {
      const useBert = i % 2 === 0;
      const at = (i * 5) % bert.sentences.length;
      const picks = [at, (at + 1) % bert.sentences.length, (at + 4) % bert.sentences.length];
      return { useBert, picks };
    });
    const answers = await Promise.all(
      jobs.map(({ useBert, picks }) =>
        useBert
          ? postJson(`${server.url}/embed`, { model: 'bert', inputs: picks.map((i) => bert.sentences[i]) })
          : postJson(`${server.url}/v1/embeddings`, {
              model: 'decoder',
              input: picks.map((i) => dec.sentences[i]),
              encoding_format: 'float',
            }),
      ),
    );
    answers.forEach((res, j) => {
      expect(res.status).toBe(200);
      const { useBert, picks } = jobs[j]!;
      const vectors: number[][] = useBert ? res.json : res.json.data.map((d: { embedding: number[] }) => d.embedding);
      if (!useBert) expect(res.json.model).toBe('decoder');
      vectors.forEach((v, k) => {
        const want = useBert ? bert.pooled.mean[picks[k]!]! : dec.pooled.last[picks[k]!]!;
        expect(v.length).toBe(want.length);
        expect(cosine(v, want)).toBeGreaterThanOrEqual(0.9999);
      });
    });
  });

  it('answers an unknown model with 404 (OpenAI shape, model_not_found, on /v1) and the wrong kind of model with 422', async () => {
    const unknown = await postJson(`${server.url}/embed`, { inputs: 'hi', model: 'nope' });
    expect(unknown.status).toBe(404);
    expect(unknown.json).toMatchObject({ error_type: 'not_found', error_code: 'MODEL_NOT_FOUND' });
    expect(unknown.json.error).toMatch(/bert \(embed\), decoder \(embed\), ranker \(rerank\)/);
    const openAi = await postJson(`${server.url}/v1/embeddings`, { input: 'hi', model: 'nope' });
    expect(openAi.status).toBe(404);
    expect(openAi.json.error).toMatchObject({ code: 'model_not_found', param: 'model' });
    const rerankUnknown = await postJson(`${server.url}/v1/rerank`, { query: 'q', documents: ['d'], model: 'nope' });
    expect(rerankUnknown.status).toBe(404);
    expect(rerankUnknown.json.error.code).toBe('model_not_found');

    const embedWithRanker = await postJson(`${server.url}/embed`, { inputs: 'hi', model: 'ranker' });
    expect(embedWithRanker.status).toBe(422);
    expect(embedWithRanker.json).toMatchObject({ error_type: 'validation', error_code: 'WRONG_MODEL_TASK' });
    expect(embedWithRanker.json.error).toMatch(/ranker is a reranker/);
    const openAiWithRanker = await postJson(`${server.url}/v1/embeddings`, { input: 'hi', model: 'ranker' });
    expect(openAiWithRanker.status).toBe(422);
    expect(openAiWithRanker.json.error).toMatchObject({ type: 'invalid_request_error', code: 'wrong_model_task', param: 'model' });
    const rerankWithEmbedder = await postJson(`${server.url}/rerank`, { query: 'q', texts: ['d'], model: 'bert' });
    expect(rerankWithEmbedder.status).toBe(422);
    expect(rerankWithEmbedder.json).toMatchObject({ error_type: 'validation', error_code: 'WRONG_MODEL_TASK' });
    expect(rerankWithEmbedder.json.error).toMatch(/bert is an embedding model/);
    const cascadeWithEmbedder = await postJson(`${server.url}/search`, {
      query: 'q',
      candidates: ['a', 'b'],
      rerank: { model: 'decoder' },
    });
    expect(cascadeWithEmbedder.status).toBe(422);
  });

  it('lists every model in /v1/models, and reports each in /info and /metrics', async () => {
    const list = (await (await fetch(`${server.url}/v1/models`)).json()) as any;
    expect(list.data.map((m: { id: string; task: string }) => `${m.id}:${m.task}`)).toEqual([
      'bert:embed',
      'decoder:embed',
      'ranker:rerank',
    ]);
    const info = (await (await fetch(`${server.url}/info`)).json()) as any;
    expect(info.name).toBe('bert');
    expect(info.models.map((m: { name: string; task: string; dimensions: number }) => [m.name, m.task, m.dimensions])).toEqual([
      ['bert', 'embed', 64],
      ['decoder', 'embed', 64],
      ['ranker', 'rerank', 64],
    ]);
    expect(info.scheduling).toBe('fair');
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    for (const model of ['bert', 'decoder', 'ranker']) {
      expect(metrics).toContain(`embed_queue_depth{model="${model}"} 0`);
      expect(metrics).toMatch(
        new RegExp(`embed_model_info\\{model="${model}",[^}]*task="${model === 'ranker' ? 'rerank' : 'embed'}"\\} 1`),
      );
    }
    expect(metrics).toMatch(/embed_tokens_total\{model="ranker"\} [1-9]/);
    expect(metrics).toMatch(/embed_batch_size_count\{model="decoder"\} [1-9]/);
  });

  it("records a collection's model for life and embeds its documents and queries with it", async () => {
    const created = await putJson(`${server.url}/collections/dec-notes`, { model: 'decoder' });
    expect(created.status).toBe(200);
    expect(created.json.settings.model).toBe('decoder');
    // The same PUT without the model means the default model: different settings.
    const again = await putJson(`${server.url}/collections/dec-notes`, '{}');
    expect(again.status).toBe(409);
    const up = await postJson(`${server.url}/collections/dec-notes/documents`, {
      documents: dec.sentences.slice(0, 4).map((text, i) => ({ id: String(i), text })),
    });
    expect(up.status).toBe(200);
    const doc = (await (await fetch(`${server.url}/collections/dec-notes/documents/2?include=vector`)).json()) as any;
    const stored =
      doc.vector ??
      (await postJson(`${server.url}/search`, { collection: 'dec-notes', query: dec.sentences[2], k: 1, include: ['vector'] })).json
        .results[0].vector;
    expect(cosine(stored, dec.pooled.last[2]!)).toBeGreaterThanOrEqual(0.9999);
    const hit = await postJson(`${server.url}/search`, { collection: 'dec-notes', query: dec.sentences[2], k: 1 });
    expect(hit.json.results[0].id).toBe('2');
    const contradicting = await postJson(`${server.url}/search`, { collection: 'dec-notes', query: 'x', model: 'bert' });
    expect(contradicting.status).toBe(422);
    const wrongKind = await putJson(`${server.url}/collections/r`, { model: 'ranker' });
    expect(wrongKind.status).toBe(422);
  });

  it("the cascade in /search returns the reranker's order, with the first stage's score beside it", async () => {
    await putJson(`${server.url}/collections/docs`, { model: 'bert' });
    const up = await postJson(`${server.url}/collections/docs/documents`, {
      documents: rr.documents.map((text, i) => ({ id: `d${i}`, text, metadata: { i } })),
    });
    expect(up.status).toBe(200);
    for (const q of [0, 1]) {
      const plain = await postJson(`${server.url}/search`, { collection: 'docs', query: rr.queries[q], k: 10 });
      const firstStage = new Map<string, number>(plain.json.results.map((h: { id: string; score: number }) => [h.id, h.score]));
      const res = await postJson(`${server.url}/search`, {
        collection: 'docs',
        query: rr.queries[q],
        k: 3,
        include: ['metadata'],
        rerank: { candidates: 50 },
      });
      expect(res.status).toBe(200);
      expect(res.json.results.map((h: { id: string }) => h.id)).toEqual(
        torchOrder(q)
          .slice(0, 3)
          .map((d) => `d${d}`),
      );
      const ref = new Map(pairsOf(q).map((p) => [`d${p.document}`, p]));
      for (const h of res.json.results as Array<{
        id: string;
        score: number;
        retrieval_score: number;
        text?: string;
        metadata: { i: number };
      }>) {
        expect(Math.abs(h.score - ref.get(h.id)!.score)).toBeLessThan(1e-4);
        expect(h.retrieval_score).toBeCloseTo(firstStage.get(h.id)!, 5);
        expect(h.text).toBeUndefined(); // not asked for
        expect(`d${h.metadata.i}`).toBe(h.id);
      }
    }
    // Fewer first-stage candidates than documents: only those are reranked.
    const two = await postJson(`${server.url}/search`, {
      collection: 'docs',
      query: rr.queries[0],
      k: 2,
      rerank: { candidates: 2, model: 'ranker' },
    });
    const plainTop2 = (await postJson(`${server.url}/search`, { collection: 'docs', query: rr.queries[0], k: 2 })).json.results.map(
      (h: { id: string }) => h.id,
    );
    expect([...two.json.results.map((h: { id: string }) => h.id)].sort()).toEqual([...plainTop2].sort());
    // Inline candidates: the same cascade, ids are positions.
    const inline = await postJson(`${server.url}/search`, {
      query: rr.queries[1],
      candidates: rr.documents,
      model: 'bert',
      rerank: { top_n: 4 },
    });
    expect(inline.status).toBe(200);
    expect(inline.json.results.map((h: { id: string }) => Number(h.id))).toEqual(torchOrder(1).slice(0, 4));
    expect(inline.json.results[0].text).toBe(rr.documents[torchOrder(1)[0]!]);
    const byVector = await postJson(`${server.url}/search`, { collection: 'docs', vector: Array(64).fill(0.1), rerank: {} });
    expect(byVector.status).toBe(422);
  });
});
