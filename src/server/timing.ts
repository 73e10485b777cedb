/** The timing and usage headers of the embedding routes: one list, also exposed through CORS. */
import type { EmbedResult } from '../runtime/embedder.js';

export const TIMING_HEADERS = ['x-compute-tokens', 'x-total-time', 'x-tokenization-time', 'x-queue-time', 'x-inference-time'] as const;

type TimingHeader = (typeof TIMING_HEADERS)[number];

/** Headers every response may carry that a browser client needs to read. */
export const EXPOSED_HEADERS: readonly string[] = ['x-request-id', ...TIMING_HEADERS, 'retry-after'];

export function timingHeaders(result: Pick<EmbedResult, 'totalTokens' | 'timings'>, totalMs: number): Record<TimingHeader, string> {
  return {
    'x-compute-tokens': String(result.totalTokens),
    'x-total-time': totalMs.toFixed(2),
    'x-tokenization-time': result.timings.tokenizeMs.toFixed(2),
    'x-queue-time': result.timings.queueMs.toFixed(2),
    'x-inference-time': result.timings.inferenceMs.toFixed(2),
  };
}
