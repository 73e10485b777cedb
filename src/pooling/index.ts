export type { PoolingMode, TokenSpan } from './pool.js';
export { cosine, finishVector, POOLING_MODES, pool, spansFromMask } from './pool.js';
export type { EmbeddingType, QuantizationRanges, QuantizedType } from './quantize.js';
export { bytesPerVector, QUANTIZED_TYPES, quantize, quantizeBinary, quantizeScalar, rangesOf } from './quantize.js';
