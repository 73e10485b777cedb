/**
 * Calibration of int8/uint8 embedding outputs: per-dimension ranges measured on a fixed set of
 * sentences (the model directory's `embedder.json` `calibration` file, else the built-in set), as
 * sentence-transformers' `quantize_embeddings(..., calibration_embeddings=...)` does.
 *
 * The ranges depend on how vectors are computed (exit layer, Token Prepending) and finished
 * (`dimensions`, `normalize`), so the calibration set is embedded once per computation and the
 * ranges derived per finish, each on first use; requests asking at the same time share the work.
 */
import { finishVector, type QuantizationRanges, rangesOf } from '../pooling/index.js';
import { BUILTIN_CALIBRATION } from './calibration-sentences.js';
import type { ModelSpec } from './model-dir.js';

/** How the calibration vectors are computed: the parts of a request that change the pooled vector. */
export interface CalibrationPlan {
  layer: number;
  tokenPrepending: boolean;
}

/** Embeds the calibration sentences: pooled, not truncated, not normalized. */
export type RawEmbed = (texts: readonly string[], plan: CalibrationPlan) => Promise<Float32Array[]>;

/** Finishes kept per computation; beyond it the oldest is recomputed when asked again. */
const MAX_CACHED = 64;

export class Calibration {
  readonly source: string;
  readonly sentences: readonly string[];
  private readonly raw = new Map<string, Promise<Float32Array[]>>();
  private readonly ranged = new Map<string, Promise<QuantizationRanges>>();

  constructor(
    spec: ModelSpec,
    private readonly embedRaw: RawEmbed,
  ) {
    this.source = spec.calibration ? `embedder.json: ${spec.calibration.file}` : 'built-in';
    this.sentences = spec.calibration?.sentences ?? BUILTIN_CALIBRATION;
  }

  /** The ranges for vectors computed with `plan` and finished to `dimensions` (normalized or not). */
  ranges(plan: CalibrationPlan, dimensions: number, normalize: boolean): Promise<QuantizationRanges> {
    const rawKey = `${plan.layer}:${plan.tokenPrepending ? 1 : 0}`;
    const key = `${rawKey}:${dimensions}:${normalize ? 1 : 0}`;
    let ranges = this.ranged.get(key);
    if (!ranges) {
      let raw = this.raw.get(rawKey);
      if (!raw) {
        raw = this.embedRaw(this.sentences, plan);
        this.remember(this.raw, rawKey, raw);
      }
      ranges = raw.then((vectors) => rangesOf(vectors.map((v) => finishVector(v, dimensions, normalize))));
      this.remember(this.ranged, key, ranges);
    }
    return ranges;
  }

  /** Caches a computation; a failed one (overload, shutdown) is forgotten so the next request retries. */
  private remember<T>(map: Map<string, Promise<T>>, key: string, value: Promise<T>): void {
    if (map.size >= MAX_CACHED) map.delete(map.keys().next().value!);
    map.set(key, value);
    value.catch(() => {
      if (map.get(key) === value) map.delete(key);
    });
  }
}
