export { pool, finishVector, cosine, spansFromMask, POOLING_MODES } from './pool.js';
export type { PoolingMode, TokenSpan } from './pool.js';
export { quantize, quantizeBinary, quantizeScalar, rangesOf, bytesPerVector, QUANTIZED_TYPES } from './quantize.js';
export type { EmbeddingType, QuantizedType, QuantizationRanges } from './quantize.js';
