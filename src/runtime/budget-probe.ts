/**
 * The batch token budget, sized by measurement on this hardware: batches of growing padded size
 * are run and the smallest budget that reaches within 10% of the best throughput seen is kept.
 * Beyond that point bigger batches only add latency (a GPU saturates much later than a CPU, hence
 * a probe, not a constant). The probe returns the budget; the engine builds its queue with it.
 */
import { BatchQueue, type BatchRunner } from './queue.js';

export const BUDGET_CANDIDATES = [512, 1024, 2048, 4096, 8192, 16384] as const;

export interface BudgetMeasurement {
  budget: number;
  /** Tokens per millisecond. */
  rate: number;
}

/** The smallest budget within 10% of the best measured rate (`fallback` when nothing was measured). */
export function chooseBudget(measured: readonly BudgetMeasurement[], fallback: number): number {
  if (measured.length === 0) return fallback;
  const top = Math.max(...measured.map((m) => m.rate));
  return measured.find((m) => m.rate >= 0.9 * top)!.budget;
}

/** Whether measuring should stop: doubling the batch stopped paying (under 10% more throughput). */
export function stopMeasuring(measured: readonly BudgetMeasurement[]): boolean {
  const prev = measured.at(-2);
  return prev !== undefined && measured.at(-1)!.rate < prev.rate * 1.1;
}

export interface ProbeOptions {
  runner: BatchRunner;
  /** The model: its name, its index among the workers' graphs, values per result, and depth. */
  model: { id: string; index: number; width: number; numLayers: number };
  /** One sequence of real token ids, repeated to fill every batch. */
  ids: Int32Array;
  maxBatchSize: number;
  fallback: number;
}

export async function probeBudget(o: ProbeOptions): Promise<{ budget: number; measured: BudgetMeasurement[] }> {
  const seq = o.ids.length;
  const candidates = BUDGET_CANDIDATES.filter((b) => b >= seq && b / seq <= o.maxBatchSize);
  const measured: BudgetMeasurement[] = [];
  for (const budget of candidates) {
    const batch = Math.floor(budget / seq);
    // A queue of its own, whose limits make every submission exactly one batch of this budget.
    const queue = new BatchQueue(
      { maxBatchTokens: budget, maxBatchSize: batch, maxDelayMs: 0, maxQueueInputs: batch, maxQueueTokens: budget, lookahead: batch },
      o.runner,
      o.model,
    );
    const inputs = Array.from({ length: batch }, () => ({ ids: o.ids, promptTokens: 0 }));
    let best = Infinity;
    try {
      for (let rep = 0; rep < 3; rep++) {
        const r = await queue.submit({ inputs, plan: { layer: o.model.numLayers, tokenPrepending: false } });
        best = Math.min(best, r.inferenceMs);
      }
    } finally {
      await queue.close();
    }
    measured.push({ budget, rate: (batch * seq) / best });
    if (stopMeasuring(measured)) break;
  }
  return { budget: chooseBudget(measured, o.fallback), measured };
}
