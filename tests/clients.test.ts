/**
 * The client libraries JavaScript users already have, unchanged, each pointed at a server this test
 * starts by its base URL only: every vector must equal /embed's for the same text. The big calls
 * (3000 texts) are sent the way each SDK sends them: LangChain in concurrent 512-text requests,
 * the AI SDK in concurrent 2048-value requests, and they must queue, not fail.
 */
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { featureExtraction } from '@huggingface/inference';
import { OpenAIEmbeddings } from '@langchain/openai';
import { OpenAIEmbedding } from '@llamaindex/openai';
import { embedMany } from 'ai';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosine, DEFAULT_MODEL, postJson, startServer, type TestServer } from './helpers.js';

const SUBJECTS = ['A man', 'The cat', 'A child', 'The engineer', 'My neighbour', 'The orchestra', 'A farmer', 'The committee'];
const VERBS = ['plays', 'reads', 'repairs', 'paints', 'describes', 'sells', 'carries', 'studies'];
const OBJECTS = [
  'a guitar',
  'the old map',
  'a broken bicycle',
  'the river bank',
  'a quiet song',
  'fresh bread',
  'the winter sky',
  'a long letter',
];
/** 3000 distinct sentences (more than one request of either SDK holds). */
const TEXTS = Array.from({ length: 3000 }, (_, i) => {
  const s = SUBJECTS[i % 8]!;
  const v = VERBS[Math.floor(i / 8) % 8]!;
  const o = OBJECTS[Math.floor(i / 64) % 8]!;
  return `${s} ${v} ${o} on day ${Math.floor(i / 512) + 1}.`;
});

describe('real client libraries against a running server', () => {
  let server: TestServer;
  let reference: number[][];
  /** /embed's vector for each of TEXTS, fetched in requests of up to 1000. */
  beforeAll(async () => {
    // No load shedding (503 on event-loop lag) and a long deadline: a busy CI machine must not turn
    // into client retries or 504s.
    server = await startServer({ modelDir: DEFAULT_MODEL, workers: 2 }, { maxEventLoopDelayMs: 0, requestTimeoutMs: 120_000 });
    reference = [];
    for (let i = 0; i < TEXTS.length; i += 1000) {
      const res = await postJson(`${server.url}/embed`, { inputs: TEXTS.slice(i, i + 1000) });
      expect(res.status, JSON.stringify(res.json).slice(0, 300)).toBe(200);
      reference.push(...(res.json as number[][]));
    }
  }, 120_000);
  afterAll(async () => server?.close());

  /** Successful requests the server answered on `route` so far (from its Prometheus metrics). */
  async function served(route: string): Promise<number> {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`embed_http_requests_total{route="${route}",method="POST",status="200"}`));
    return line ? Number(line.split(' ').at(-1)) : 0;
  }

  /** Every vector equals /embed's for the text at the same position of TEXTS. */
  function expectSameAsEmbed(vectors: ArrayLike<number>[], offset = 0): void {
    expect(vectors.length).toBeGreaterThan(0);
    let worst = 1;
    vectors.forEach((v, i) => {
      expect(v.length).toBe(reference[offset + i]!.length);
      worst = Math.min(worst, cosine(v, reference[offset + i]!));
    });
    expect(worst).toBeGreaterThanOrEqual(0.9999);
  }

  it('openai: embeddings.create (its default base64 path, and float)', async () => {
    const client = new OpenAI({ apiKey: 'unused', baseURL: `${server.url}/v1` });
    const b64 = await client.embeddings.create({ model: 'text-embedding-3-small', input: TEXTS.slice(0, 2048) });
    expect(b64.data.map((d) => d.index)).toEqual(Array.from({ length: 2048 }, (_, i) => i));
    expectSameAsEmbed(b64.data.map((d) => d.embedding));
    expect(b64.usage.prompt_tokens).toBeGreaterThan(2048);
    const float = await client.embeddings.create({ model: 'm', input: TEXTS[5]!, encoding_format: 'float' });
    expectSameAsEmbed([float.data[0]!.embedding], 5);
  });

  it('@langchain/openai: OpenAIEmbeddings with a baseURL, embedDocuments of 3000 texts and embedQuery', async () => {
    // Nothing but the base URL changes: LangChain.js sends text (no token ids), 512 texts a request.
    const embeddings = new OpenAIEmbeddings({
      model: 'text-embedding-3-small',
      apiKey: 'unused',
      configuration: { baseURL: `${server.url}/v1` },
    });
    const [before, refused] = [await served('/v1/embeddings'), server.engine.stats.rejectedOverloaded];
    const vectors = await embeddings.embedDocuments(TEXTS);
    // Six requests, none refused (a refused one would be retried silently by the client).
    expect(await served('/v1/embeddings')).toBe(before + 6);
    expect(server.engine.stats.rejectedOverloaded).toBe(refused);
    expect(vectors).toHaveLength(TEXTS.length);
    expectSameAsEmbed(vectors);
    expectSameAsEmbed([await embeddings.embedQuery(TEXTS[7]!)], 7);
  }, 120_000);

  it('ai + @ai-sdk/openai-compatible: embedMany of 3000 values', async () => {
    const provider = createOpenAICompatible({ name: 'local', baseURL: `${server.url}/v1` });
    const [before, refused] = [await served('/v1/embeddings'), server.engine.stats.rejectedOverloaded];
    const { embeddings, usage } = await embedMany({ model: provider.embeddingModel('text-embedding-3-small'), values: TEXTS });
    // Two concurrent requests (2048 + 952 values), both queued, none refused.
    expect(await served('/v1/embeddings')).toBe(before + 2);
    expect(server.engine.stats.rejectedOverloaded).toBe(refused);
    expect(embeddings).toHaveLength(TEXTS.length);
    expectSameAsEmbed(embeddings);
    expect(usage.tokens).toBeGreaterThan(TEXTS.length);
  }, 120_000);

  it('@llamaindex/openai: OpenAIEmbedding with a baseURL', async () => {
    const embedding = new OpenAIEmbedding({ model: 'text-embedding-3-small', apiKey: 'unused', baseURL: `${server.url}/v1` });
    expectSameAsEmbed(await embedding.getTextEmbeddings(TEXTS.slice(0, 100)));
    expectSameAsEmbed([await embedding.getTextEmbedding(TEXTS[3]!)], 3);
  });

  it("@huggingface/inference: featureExtraction with endpointUrl (TEI's root route)", async () => {
    const before = await served('/');
    const one = await featureExtraction({ endpointUrl: server.url, inputs: TEXTS[1]! });
    // TEI answers a single string with a one-element batch, which the client passes through.
    expectSameAsEmbed(one as number[][], 1);
    const many = await featureExtraction({ endpointUrl: server.url, inputs: TEXTS.slice(0, 50) });
    expectSameAsEmbed(many as number[][]);
    expect(await served('/')).toBe(before + 2);
  });

  it('ollama: embed with a host', async () => {
    const ollama = new Ollama({ host: server.url });
    const res = await ollama.embed({ model: 'nomic-embed-text', input: TEXTS.slice(0, 64) });
    expectSameAsEmbed(res.embeddings);
    expect(res.prompt_eval_count).toBeGreaterThan(64);
    const one = await ollama.embed({ model: 'nomic-embed-text', input: TEXTS[9]! });
    expectSameAsEmbed(one.embeddings, 9);
    expect(await served('/api/embed')).toBe(2);
  });
});

describe('a burst beyond the queue limit', () => {
  let server: TestServer;
  beforeAll(async () => {
    // Room for one SDK request only: the AI SDK's second, concurrent request is refused with 429.
    server = await startServer(
      { modelDir: DEFAULT_MODEL, workers: 2, limits: { maxQueueInputs: 256 } },
      { maxEventLoopDelayMs: 0, requestTimeoutMs: 120_000 },
    );
  }, 60_000);
  afterAll(async () => server?.close());

  it('gets 429 with Retry-After, which the AI SDK honours: embedMany still succeeds', async () => {
    const provider = createOpenAICompatible({ name: 'local', baseURL: `${server.url}/v1` });
    const { embeddings } = await embedMany({ model: provider.embeddingModel('m'), values: TEXTS, maxRetries: 3 });
    expect(embeddings).toHaveLength(TEXTS.length);
    expect(server.engine.stats.rejectedOverloaded).toBeGreaterThan(0);
    const check = await postJson(`${server.url}/embed`, { inputs: [TEXTS[2999]] });
    expect(cosine(embeddings[2999]!, (check.json as number[][])[0]!)).toBeGreaterThanOrEqual(0.9999);
  }, 120_000);
});
