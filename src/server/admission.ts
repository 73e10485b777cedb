/**
 * Admission of embedding requests, before their bodies are parsed. An admitted request holds a
 * reservation in the batch queue until its inputs are submitted or it ends otherwise; a refused
 * one gets 429 with Retry-After without its body being read into JSON.
 *
 * Refusals are paced: beyond FAST_REFUSALS_PER_S in a second, a refusal is answered only after
 * the Retry-After it carries has passed (at most MAX_REFUSAL_HOLD_MS). Clients that ignore
 * Retry-After and resend at once would otherwise turn refusals into a flood that takes the CPU
 * from the admitted work (inference threads run at a lower priority than the HTTP thread, on
 * purpose); held, each such connection retries at most once per Retry-After, which is what it
 * was asked to do, and a held refusal costs a timer, not CPU.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Embedder } from '../runtime/embedder.js';
import { RuntimeError } from '../runtime/errors.js';
import type { Admission } from '../runtime/queue.js';
import { queueRetryAfterSeconds } from './errors/catalogue.js';

export const FAST_REFUSALS_PER_S = 20;
export const MIN_REFUSAL_HOLD_MS = 3000;
export const MAX_REFUSAL_HOLD_MS = 5000;

declare module 'fastify' {
  interface FastifyRequest {
    /** The queue reservation of an admitted embedding request. */
    admission?: Admission;
  }
}

type Hook = (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
const hooks = new WeakMap<Embedder, Hook>();

/**
 * The onRequest hook that admits or refuses (one per engine, so every route shares the pacing);
 * the reservation is released when the response ends.
 */
export function admissionHook(embedder: Embedder): Hook {
  let hook = hooks.get(embedder);
  if (!hook) hooks.set(embedder, (hook = makeHook(embedder)));
  return hook;
}

function makeHook(embedder: Embedder): Hook {
  let windowStart = 0;
  let refusedInWindow = 0;
  return async (request, reply) => {
    try {
      const admission = embedder.admit();
      request.admission = admission;
      reply.raw.once('close', () => embedder.release(admission));
    } catch (err) {
      const now = performance.now();
      if (now - windowStart >= 1000) {
        windowStart = now;
        refusedInWindow = 0;
      }
      if (++refusedInWindow > FAST_REFUSALS_PER_S) {
        const retryAfterS = err instanceof RuntimeError ? queueRetryAfterSeconds(err) : 1;
        await new Promise((r) => setTimeout(r, Math.min(MAX_REFUSAL_HOLD_MS, Math.max(MIN_REFUSAL_HOLD_MS, retryAfterS * 1000))));
      }
      throw err;
    }
  };
}
