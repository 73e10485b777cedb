/**
 * Routing by `model`: which served model answers a request. An unknown name is a 404
 * MODEL_NOT_FOUND (code `model_not_found` in OpenAI's shape); a model of the wrong kind (embedding
 * with a reranker, reranking with an embedder) is a 422. A request that names no model gets the
 * first served model of the kind it needs (the default model, for embedding, unless it is a reranker).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Embedder, ModelSet } from '../runtime/embedder.js';
import { admissionHook } from './admission.js';
import { ApiError } from './errors/catalogue.js';

export type Task = Embedder['task'];

const KIND: Record<Task, string> = { embed: 'an embedding model', rerank: 'a reranker' };

export interface RouteOptions {
  /**
   * OpenAI- and Ollama-style routes: with one model served, any name is accepted (their clients
   * always send one, like `text-embedding-3-small`); with several, the name selects one.
   */
  anyNameWhenSingle?: boolean;
}

export function describeModels(models: ModelSet): string {
  return models.all.map((e) => `${e.name} (${e.task})`).join(', ');
}

export function modelFor(models: ModelSet, name: string | null | undefined, task: Task, options: RouteOptions = {}): Embedder {
  if (name === undefined || name === null || (options.anyNameWhenSingle && models.all.length === 1)) {
    const engine = models.firstFor(task);
    if (!engine) throw new ApiError('NO_MODEL_FOR_TASK', task === 'rerank' ? 'reranker' : 'embedding model', describeModels(models));
    return engine;
  }
  const engine = models.get(name);
  if (!engine) throw new ApiError('MODEL_NOT_FOUND', name, describeModels(models));
  if (engine.task !== task)
    throw new ApiError(
      'WRONG_MODEL_TASK',
      name,
      KIND[engine.task],
      task === 'rerank' ? 'rerank with' : 'embed with',
      describeModels(models),
    );
  return engine;
}

/**
 * Admission before the body is parsed (admission.ts: a queue reservation, refusals paced), when one
 * model is served. With several, the body names the model, so the route admits on that model's
 * queue once it knows it (`admit`).
 */
export function admitEarly(models: ModelSet): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  return async (request, reply) => {
    if (models.all.length === 1) await admissionHook(models.default)(request, reply);
  };
}

/** Admission on the named model's own queue, once the body was parsed (admitEarly did it for one model). */
export async function admit(models: ModelSet, embedder: Embedder, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (models.all.length > 1) await admissionHook(embedder)(request, reply);
}

/** One embedder as a set of one (an app built around a single Embedder). */
export function singleModel(embedder: Embedder): ModelSet {
  return {
    all: [embedder],
    default: embedder,
    get: (name) => (name === embedder.name ? embedder : undefined),
    firstFor: (task) => (embedder.task === task ? embedder : undefined),
  };
}
