export { pool, finishVector, POOLING_MODES } from './pool.js';
export type { PoolingMode, TokenSpan } from './pool.js';
