/**
 * Collections and search: documents are embedded with the collection's fixed settings, stored
 * durably by the index, and queries are embedded with the collection's query settings, so both
 * sides always live in the same space.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type {
  CollectionSettings,
  CollectionSettingsInput,
  DocumentInput,
  Filter,
  Fusion,
  IncludeField,
  SearchMode,
  StoreBackend,
  WriteReceipt,
} from '../../index/index.js';
import { scoreCandidates } from '../../index/index.js';
import type { Embedder, EmbedOptions } from '../../runtime/embedder.js';
import { ApiError } from '../errors/catalogue.js';
import { errorResponses } from '../errors/reply.js';
import { checkTexts, type InputNames, nameInputs } from '../inputs.js';
import {
  EMPTY_INPUT_RULE,
  type KnobBody,
  knobProperties,
  knobsFromBody,
  modelProperty,
  requestEmbedder,
  requestReranker,
} from '../knobs.js';
import { describeModels, modelFor } from '../model-routing.js';
import { SEQ_HEADER } from '../replica.js';
import type { RouteDeps } from './deps.js';

const NAME = { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$', description: '1–64 of [A-Za-z0-9_-]' } as const;
const ID = { type: 'string', minLength: 1, maxLength: 256 } as const;
const nameParams = { type: 'object', required: ['name'], properties: { name: NAME } } as const;
const docParams = { type: 'object', required: ['name', 'id'], properties: { name: NAME, id: ID } } as const;

const settingsSchema = {
  type: 'object',
  properties: {
    metric: { type: 'string', enum: ['cosine', 'ip', 'l2'] },
    dimensions: { type: 'integer' },
    layer: { type: 'integer' },
    document_prompt_name: { type: 'string' },
    query_prompt_name: { type: 'string' },
    hnsw: { type: 'object', properties: { m: { type: 'integer' }, ef_construction: { type: 'integer' } } },
    model: { type: 'string', description: 'The embedding model, fixed for life (default: the default embedding model)' },
    lexical: {
      description: "BM25 index over the documents' text: true (k1 0.9, b 0.4) or {k1, b}; absent/false: none",
      oneOf: [{ type: 'boolean' }, { type: 'object', properties: { k1: { type: 'number' }, b: { type: 'number' } } }],
    },
    index_dimensions: {
      type: 'integer',
      description: 'Matryoshka prefix the HNSW graph is built on; the full vectors are kept in `storage` for rescoring',
    },
    storage: {
      type: 'string',
      enum: ['float32', 'float16', 'int8'],
      description: 'Precision of the full vectors kept beside a prefix graph (default float32)',
    },
  },
} as const;

const collectionSchema = {
  type: 'object',
  properties: { name: { type: 'string' }, settings: settingsSchema, count: { type: 'integer' } },
} as const;

const hitSchema = {
  type: 'object',
  required: ['id', 'score'],
  properties: {
    id: { type: 'string' },
    score: {
      type: 'number',
      description:
        'Higher is better: cosine similarity, dot product, or negative Euclidean distance (dense); BM25 (lexical); the fused score (hybrid)',
    },
    dense_score: { type: 'number', description: 'lexical/hybrid: the dense score of a hit the dense side returned' },
    lexical_score: { type: 'number', description: 'lexical/hybrid: the BM25 score of a hit the lexical side returned' },
    retrieval_score: { type: 'number', description: "With rerank: the first stage's score (`score` is then the reranker's)" },
    text: { type: 'string' },
    metadata: { type: 'object', additionalProperties: true },
    vector: { type: 'array', items: { type: 'number' } },
  },
} as const;

const condition = {
  type: 'object',
  required: ['key'],
  properties: {
    key: { type: 'string' },
    match: { type: 'object', properties: { value: { type: ['string', 'number', 'boolean'] } } },
    range: {
      type: 'object',
      properties: { gt: { type: 'number' }, gte: { type: 'number' }, lt: { type: 'number' }, lte: { type: 'number' } },
    },
  },
} as const;

/** The store's settings, with `dimensions` defaulting to the model's size; `model` is the embedding model's name. */
type CreateBody = Omit<CollectionSettingsInput, 'dimensions'> & { dimensions?: number };

interface DocumentsBody {
  documents: Array<{ id: string; text?: string; vector?: number[]; metadata?: Record<string, unknown> }>;
}

/** One search hit, before and after the cascade. */
interface Hit {
  id: string;
  score: number;
  retrieval_score?: number;
  text?: string;
  metadata?: Record<string, unknown>;
  vector?: number[];
}

const DEFAULT_RERANK_CANDIDATES = 50;

interface SearchBody extends KnobBody {
  collection?: string;
  query?: string;
  vector?: number[];
  candidates?: string[];
  k?: number;
  offset?: number;
  ef?: number;
  filter?: Filter;
  mode?: SearchMode;
  fusion?: Fusion;
  score_threshold?: number;
  rescore?: number;
  include?: IncludeField[];
  query_prompt_name?: string;
  document_prompt_name?: string;
  model?: string | null;
  rerank?: { model?: string; top_n?: number; candidates?: number };
}

/** How a collection embeds text: its settings as engine options. */
function embeddingOptions(settings: CollectionSettings, promptName: string | undefined): EmbedOptions {
  return { dimensions: settings.dimensions, layer: settings.layer, promptName, normalize: true };
}

/**
 * Runs a store write and answers its receipt: a replicated store fills in the sequence number it
 * committed at, sent as `x-store-seq` (what a later read's `x-min-store-seq` waits for).
 */
async function committed<T>(reply: FastifyReply, write: (receipt: WriteReceipt) => Promise<T>): Promise<T> {
  const receipt: WriteReceipt = {};
  const result = await write(receipt);
  if (receipt.seq !== undefined) reply.header(SEQ_HEADER, String(receipt.seq));
  return result;
}

const deletedResponse = { 200: { type: 'object', properties: { deleted: { type: 'boolean' } } }, ...errorResponses };

export const collectionsPlugin: FastifyPluginAsync<RouteDeps & { store: StoreBackend }> = async (
  app,
  { models, store, limits, metrics },
) => {
  // Every route here answers from the store (replica.ts reads the mark).
  app.addHook('onRoute', (route) => {
    route.config = { ...route.config, store: true };
  });

  /** Vectors for texts from one model, under the request's one deadline and disconnect signal. */
  const embedderFor = (request: FastifyRequest, reply: FastifyReply, embedder: Embedder) => {
    const embed = requestEmbedder(request, reply, embedder, metrics, limits.requestTimeoutMs);
    return async (texts: string[], opts: EmbedOptions, names: InputNames): Promise<Float32Array[]> =>
      (await embed(texts, opts, names)).vectors;
  };

  /** The model a collection was created with (collections from before models were named: the default). */
  const modelOf = (name: string, settings: CollectionSettings): Embedder => {
    const model = settings.model ?? models.firstFor('embed')?.name ?? '';
    const embedder = models.get(model);
    if (embedder?.task !== 'embed') throw new ApiError('COLLECTION_MODEL_NOT_SERVED', name, model, describeModels(models));
    return embedder;
  };

  /**
   * The cascade's second stage: the cross-encoder scores (query, hit text) for every first-stage
   * hit, and they come back in its order, each keeping its first-stage score.
   */
  const rerankHits = async (
    request: FastifyRequest,
    reply: FastifyReply,
    query: string,
    hits: Hit[],
    spec: NonNullable<SearchBody['rerank']>,
  ): Promise<Hit[]> => {
    const reranker = modelFor(models, spec.model, 'rerank');
    const missing = hits.find((h) => h.text === undefined);
    if (missing) throw new ApiError('RERANK_NEEDS_TEXT', missing.id);
    if (hits.length === 0) return [];
    const { scores } = await requestReranker(
      request,
      reply,
      reranker,
      metrics,
      limits.requestTimeoutMs,
    )(
      query,
      hits.map((h) => h.text!),
      (i) => `the text of document ${JSON.stringify(hits[i]!.id)}`,
    );
    return hits.map((h, i) => ({ ...h, retrieval_score: h.score, score: scores[i]! })).sort((a, b) => b.score - a.score);
  };

  app.put<{ Params: { name: string }; Body: CreateBody }>(
    '/collections/:name',
    {
      schema: {
        summary: 'Create a collection (its metric and embedding settings are fixed for its lifetime)',
        tags: ['collections'],
        params: nameParams,
        body: {
          ...settingsSchema,
          properties: { ...settingsSchema.properties, dimensions: { type: 'integer', minimum: 1 }, layer: { type: 'integer', minimum: 1 } },
        },
        response: {
          200: { ...collectionSchema, properties: { ...collectionSchema.properties, created: { type: 'boolean' } } },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const body = request.body ?? {};
      const embedder = modelFor(models, body.model, 'embed');
      const dimensions = body.dimensions ?? embedder.spec.hiddenSize;
      // The model must be able to embed the way this collection says, for its whole life.
      embedder.validate({ dimensions, layer: body.layer, promptName: body.document_prompt_name });
      embedder.validate({ dimensions, layer: body.layer, promptName: body.query_prompt_name });
      // The graph's prefix must itself be a truncation the model supports (Matryoshka).
      if (body.index_dimensions !== undefined && body.index_dimensions !== dimensions) {
        if (body.index_dimensions > dimensions) throw new ApiError('INDEX_DIMENSIONS_TOO_LARGE', body.index_dimensions, dimensions);
        embedder.validate({ dimensions: body.index_dimensions, layer: body.layer });
      }
      const { created, settings } = await committed(reply, (receipt) =>
        store.create(request.params.name, { ...body, dimensions, model: embedder.name }, receipt),
      );
      return { name: request.params.name, settings, count: (await store.info(request.params.name)).count, created };
    },
  );

  app.get(
    '/collections',
    {
      schema: {
        summary: 'List collections',
        tags: ['collections'],
        response: { 200: { type: 'object', properties: { collections: { type: 'array', items: collectionSchema } } } },
      },
    },
    async () => ({
      collections: await store.list(),
    }),
  );

  app.get<{ Params: { name: string } }>(
    '/collections/:name',
    {
      schema: {
        summary: 'A collection: settings and document count',
        tags: ['collections'],
        params: nameParams,
        response: { 200: collectionSchema, ...errorResponses },
      },
    },
    async (request) => store.info(request.params.name),
  );

  app.delete<{ Params: { name: string } }>(
    '/collections/:name',
    {
      schema: {
        summary: 'Delete a collection and its documents',
        tags: ['collections'],
        params: nameParams,
        response: deletedResponse,
      },
    },
    async (request, reply) => {
      await committed(reply, (receipt) => store.drop(request.params.name, receipt));
      return { deleted: true };
    },
  );

  app.post<{ Params: { name: string }; Body: DocumentsBody }>(
    '/collections/:name/documents',
    {
      schema: {
        summary: 'Upsert documents, all or nothing; answers once the write is durable',
        tags: ['collections'],
        params: nameParams,
        body: {
          type: 'object',
          required: ['documents'],
          properties: {
            documents: {
              type: 'array',
              minItems: 1,
              items: {
                type: 'object',
                required: ['id'],
                properties: {
                  id: ID,
                  text: {
                    type: 'string',
                    description: `Embedded unless vector is given (then kept as it is, for display and the lexical index). ${EMPTY_INPUT_RULE}`,
                  },
                  vector: { type: 'array', items: { type: 'number' }, minItems: 1 },
                  metadata: { type: 'object', additionalProperties: true },
                },
              },
            },
          },
        },
        response: { 200: { type: 'object', properties: { upserted: { type: 'integer' } } }, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      const { documents } = request.body;
      if (documents.length > limits.maxInputs) {
        throw new ApiError('TOO_MANY_INPUTS', 'documents', documents.length, limits.maxInputs);
      }
      const settings = (await store.info(name)).settings;
      documents.forEach((d, i) => {
        if (d.text === undefined && d.vector === undefined) throw new ApiError('DOCUMENT_NEEDS_TEXT_OR_VECTOR', i);
        if (d.vector !== undefined && d.vector.length !== settings.dimensions) {
          throw new ApiError('VECTOR_LENGTH_MISMATCH', i, d.vector.length, settings.dimensions);
        }
      });
      const toEmbed = documents.map((d, i) => ({ d, i })).filter(({ d }) => d.vector === undefined);
      if (toEmbed.length)
        checkTexts(
          toEmbed.map(({ d }) => d.text!),
          limits,
          'documents.text',
        );
      const vectors = toEmbed.length
        ? await embedderFor(request, reply, modelOf(name, settings))(
            toEmbed.map(({ d }) => d.text!),
            embeddingOptions(settings, settings.document_prompt_name),
            (n) => `documents[${toEmbed[n]!.i}].text`,
          )
        : [];
      const byIndex = new Map(toEmbed.map(({ i }, n) => [i, vectors[n]!]));
      const docs: DocumentInput[] = documents.map((d, i) => ({
        id: d.id,
        vector: d.vector ?? byIndex.get(i)!,
        ...(d.text !== undefined && { text: d.text }),
        ...(d.metadata !== undefined && { metadata: d.metadata }),
      }));
      const r = await committed(reply, (receipt) => store.upsert(name, docs, receipt));
      return { upserted: r.inserted + r.replaced };
    },
  );

  app.get<{ Params: { name: string; id: string } }>(
    '/collections/:name/documents/:id',
    {
      schema: {
        summary: 'A stored document',
        tags: ['collections'],
        params: docParams,
        response: {
          200: {
            type: 'object',
            properties: {
              id: { type: 'string' },
              text: { type: 'string' },
              metadata: { type: 'object', additionalProperties: true },
              vector: { type: 'array', items: { type: 'number' } },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const doc = await store.get(request.params.name, request.params.id);
      if (!doc) throw new ApiError('DOCUMENT_NOT_FOUND', request.params.id, request.params.name);
      return doc;
    },
  );

  app.delete<{ Params: { name: string; id: string } }>(
    '/collections/:name/documents/:id',
    {
      schema: {
        summary: 'Delete a document',
        tags: ['collections'],
        params: docParams,
        response: deletedResponse,
      },
    },
    async (request, reply) => {
      const existed = await committed(reply, (receipt) => store.delete(request.params.name, request.params.id, receipt));
      if (!existed) throw new ApiError('DOCUMENT_NOT_FOUND', request.params.id, request.params.name);
      return { deleted: true };
    },
  );

  app.post<{ Body: SearchBody }>(
    '/search',
    {
      schema: {
        summary: 'Search a collection by text or vector, or rank inline candidates against a query',
        tags: ['collections'],
        body: {
          type: 'object',
          properties: {
            collection: NAME,
            query: { type: 'string', description: `Query text (every mode). ${EMPTY_INPUT_RULE}` },
            vector: { type: 'array', items: { type: 'number' }, minItems: 1 },
            candidates: {
              type: 'array',
              items: { type: 'string' },
              minItems: 1,
              description: `Texts to rank (no index). ${EMPTY_INPUT_RULE}`,
            },
            k: { type: 'integer', minimum: 1, maximum: 1000, default: 10 },
            offset: { type: 'integer', minimum: 0, maximum: 10000, description: 'Results to skip (pagination)' },
            ef: { type: 'integer', minimum: 1, maximum: 10000 },
            mode: {
              type: 'string',
              enum: ['dense', 'lexical', 'hybrid'],
              description:
                'dense (default), lexical (BM25) or hybrid (both, fused); lexical/hybrid need a collection created with lexical and a text query',
            },
            fusion: {
              type: 'object',
              required: ['method'],
              description:
                'hybrid only: {"method": "rrf", "k": 60} (reciprocal rank fusion) or {"method": "weighted", "alpha": 0.5} (min-max normalized scores, alpha weighs the dense side)',
              properties: {
                method: { type: 'string', enum: ['rrf', 'weighted'] },
                k: { type: 'number', minimum: 0 },
                alpha: { type: 'number', minimum: 0, maximum: 1 },
              },
            },
            score_threshold: { type: 'number', description: 'Only results whose score is at least this' },
            rescore: {
              type: 'integer',
              minimum: 1,
              maximum: 10000,
              description:
                'Collections with index_dimensions: graph candidates rescored with the full vectors (default max(10 × (offset + k), 100))',
            },
            filter: {
              type: 'object',
              properties: { must: { type: 'array', items: condition }, must_not: { type: 'array', items: condition } },
            },
            include: { type: 'array', items: { type: 'string', enum: ['metadata', 'text', 'vector'] } },
            query_prompt_name: { type: 'string' },
            document_prompt_name: { type: 'string' },
            rerank: {
              type: 'object',
              description:
                "Retrieve-then-rerank: the first `candidates` hits are scored by a cross-encoder and the best `top_n` returned in its order (`score` is the reranker's, `retrieval_score` the first stage's)",
              properties: {
                model: { type: 'string', description: 'A served reranker (default: the first served)' },
                top_n: { type: 'integer', minimum: 1, maximum: 1000, description: 'Hits returned (default k)' },
                candidates: {
                  type: 'integer',
                  minimum: 1,
                  maximum: 1000,
                  default: DEFAULT_RERANK_CANDIDATES,
                  description: 'First-stage hits reranked',
                },
              },
            },
            ...knobProperties,
            ...modelProperty,
          },
        },
        response: { 200: { type: 'object', properties: { results: { type: 'array', items: hitSchema } } }, ...errorResponses },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const k = b.k ?? 10;
      const rerank = b.rerank;
      if (rerank && b.query === undefined) throw new ApiError('RERANK_NEEDS_QUERY');
      // With rerank, the first stage fetches `candidates` hits (at least offset + top_n) and the
      // reranker orders them; offset and top_n then apply to the reranked list.
      const topN = rerank?.top_n ?? k;
      const rerankOffset = rerank ? (b.offset ?? 0) : 0;
      const firstStage = rerank ? Math.max(rerank.candidates ?? DEFAULT_RERANK_CANDIDATES, rerankOffset + topN) : k;
      const include = new Set<IncludeField>(b.include ?? ['text', 'metadata']);
      /** Applies the cascade when asked, then drops the text the client did not ask for. */
      const finish = async (hits: Hit[]): Promise<{ results: Hit[] }> => {
        if (!rerank) return { results: hits };
        const ranked = (await rerankHits(request, reply, b.query!, hits, rerank)).slice(rerankOffset, rerankOffset + topN);
        if (!include.has('text')) for (const h of ranked) delete h.text;
        return { results: ranked };
      };
      if (b.collection !== undefined) {
        if (b.candidates !== undefined) throw new ApiError('SEARCH_TARGET_CONFLICT');
        if ((b.query === undefined) === (b.vector === undefined)) throw new ApiError('QUERY_XOR_VECTOR');
        const settings = (await store.info(b.collection)).settings;
        const embedder = modelOf(b.collection, settings);
        if (b.model != null && b.model !== embedder.name) {
          throw new ApiError(
            'CONTRADICTS_COLLECTION',
            `model=${JSON.stringify(b.model)} contradicts the collection's model (${embedder.name}); queries are embedded with the model the documents were`,
          );
        }
        const mode = b.mode ?? 'dense';
        if (mode !== 'dense' && b.query === undefined) throw new ApiError('MODE_NEEDS_QUERY', mode);
        if (mode !== 'dense' && !settings.lexical) throw new ApiError('MODE_NEEDS_LEXICAL', mode, b.collection);
        let vector: number[] | Float32Array | undefined;
        if (b.query !== undefined) rejectContradictions(b, settings);
        if (b.vector !== undefined) {
          vector = b.vector;
        } else if (mode !== 'lexical') {
          vector = (
            await embedderFor(request, reply, embedder)(
              [b.query!],
              { ...knobsFromBody(b), ...embeddingOptions(settings, settings.query_prompt_name) },
              () => 'query',
            )
          )[0]!;
        } else {
          // Lexical only: nothing is embedded, but a blank query is refused the same way.
          await embedder.checkReadable([b.query!]).catch((err: unknown) => {
            throw nameInputs(err, () => 'query');
          });
        }
        const options = {
          k: firstStage,
          ef: b.ef,
          filter: b.filter,
          include: rerank ? [...new Set<IncludeField>([...include, 'text'])] : b.include,
          ...(b.offset !== undefined && !rerank && { offset: b.offset }),
          ...(b.mode !== undefined && { mode: b.mode }),
          ...(b.query !== undefined && mode !== 'dense' && { text: b.query }),
          ...(b.fusion !== undefined && { fusion: b.fusion }),
          ...(b.score_threshold !== undefined && { score_threshold: b.score_threshold }),
          ...(b.rescore !== undefined && { rescore: b.rescore }),
        };
        return finish((await store.search(b.collection, vector, options)) as Hit[]);
      }
      if (b.candidates === undefined) throw new ApiError('SEARCH_TARGET_MISSING');
      if (b.query === undefined) throw new ApiError('CANDIDATES_NEED_QUERY');
      for (const field of ['vector', 'filter', 'ef', 'mode', 'fusion', 'rescore'] as const) {
        if (b[field] !== undefined) throw new ApiError('COLLECTION_ONLY_FIELD', field);
      }
      checkTexts(b.candidates, limits, 'candidates');
      const embedder = modelFor(models, b.model, 'embed');
      const knobs = knobsFromBody(b);
      // Query and candidates may take different prompts, so two calls, under one deadline.
      const embed = embedderFor(request, reply, embedder);
      const [query] = await embed(
        [b.query],
        { ...knobs, promptName: b.query_prompt_name ?? knobs.promptName, normalize: true },
        () => 'query',
      );
      const docs = await embed(
        b.candidates,
        { ...knobs, promptName: b.document_prompt_name ?? knobs.promptName, normalize: true },
        (i) => `candidates[${i}]`,
      );
      const offset = rerank ? 0 : (b.offset ?? 0);
      return finish(
        scoreCandidates(query!, docs, 'cosine', offset + firstStage)
          .slice(offset)
          .filter(({ score }) => b.score_threshold === undefined || score >= b.score_threshold)
          .map(({ index, score }) => ({
            id: String(index),
            score,
            // The cascade needs every candidate's text; finish() drops it when not asked for.
            ...((rerank || include.has('text')) && { text: b.candidates![index]! }),
            ...(include.has('vector') && { vector: Array.from(docs[index]!) }),
          })),
      );
    },
  );
};

/** A query in a collection is embedded the collection's way; knobs that say otherwise are an error. */
function rejectContradictions(b: SearchBody, s: CollectionSettings): void {
  const clash = (field: string, given: unknown, fixed: unknown): void => {
    if (given !== undefined && given !== null && given !== fixed) {
      throw new ApiError(
        'CONTRADICTS_COLLECTION',
        `${field}=${JSON.stringify(given)} contradicts the collection's ${field} (${JSON.stringify(fixed ?? null)}); queries are embedded with the collection's settings`,
      );
    }
  };
  clash('dimensions', b.dimensions, s.dimensions);
  clash('layer', b.layer, s.layer);
  clash('prompt_name', b.prompt_name, s.query_prompt_name);
  clash('query_prompt_name', b.query_prompt_name, s.query_prompt_name);
  if (b.instruction != null)
    throw new ApiError('CONTRADICTS_COLLECTION', "instruction contradicts the collection's settings: queries use its query_prompt_name");
  if (b.normalize === false)
    throw new ApiError('CONTRADICTS_COLLECTION', 'normalize: false contradicts the collection: stored vectors are normalized');
  if (b.token_prepending) throw new ApiError('CONTRADICTS_COLLECTION', "token_prepending contradicts the collection's settings");
}
