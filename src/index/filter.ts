import { ValidationError } from './errors.js';
import type { Filter, MatchValue } from './types.js';

/**
 * Qdrant-style metadata filters, compiled once per query into a predicate the
 * HNSW walk calls for every candidate it visits.
 *
 * Semantics:
 *  - a document passes when every `must` condition holds and no `must_not` one does;
 *  - `key` is a dotted path ("a.b"); a key containing a literal dot cannot be addressed;
 *  - arrays met along the path (or at its end) are looked into: a condition holds
 *    when ANY reached value satisfies it (`tags: ["x","y"]` matches value "x");
 *  - `match` compares with strict equality (1 does not match "1");
 *  - `range` only considers numbers; bounds are combined with AND;
 *  - a missing field satisfies no condition (so it passes `must_not`).
 */

export type MetadataPredicate = (metadata: Readonly<Record<string, unknown>> | undefined) => boolean;

type CompiledCondition = (metadata: Readonly<Record<string, unknown>> | undefined) => boolean;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(where: string, what: string): never {
  throw new ValidationError(`filter${where}: ${what}`);
}

function resolvePath(metadata: Readonly<Record<string, unknown>> | undefined, segments: readonly string[]): unknown[] {
  if (metadata === undefined) return [];
  let current: unknown[] = [metadata];
  for (const seg of segments) {
    const next: unknown[] = [];
    for (const v of current) {
      if (Array.isArray(v)) {
        for (const el of v) if (isObject(el) && Object.hasOwn(el, seg)) next.push(el[seg]);
      } else if (isObject(v) && Object.hasOwn(v, seg)) {
        next.push(v[seg]);
      }
    }
    if (next.length === 0) return next;
    current = next;
  }
  const out: unknown[] = [];
  for (const v of current) {
    if (Array.isArray(v)) out.push(...v);
    else out.push(v);
  }
  return out;
}

const RANGE_OPS = ['gt', 'gte', 'lt', 'lte'] as const;

function compileCondition(raw: unknown, where: string): CompiledCondition {
  if (!isObject(raw)) fail(where, 'condition must be an object');
  for (const k of Object.keys(raw)) {
    if (k !== 'key' && k !== 'match' && k !== 'range') fail(where, `unknown field "${k}" (supported: key, match, range)`);
  }
  const key = raw.key;
  if (typeof key !== 'string' || key.length === 0) fail(where, 'key must be a non-empty string');
  const segments = key.split('.');
  if (segments.some((s) => s.length === 0)) fail(where, `key "${key}" has an empty path segment`);
  const hasMatch = raw.match !== undefined;
  const hasRange = raw.range !== undefined;
  if (hasMatch === hasRange) fail(where, 'condition needs exactly one of match or range');

  if (hasMatch) {
    const m = raw.match;
    if (!isObject(m) || Object.keys(m).length !== 1 || !Object.hasOwn(m, 'value')) {
      fail(`${where}.match`, 'must be { value: string | number | boolean }');
    }
    const value = m.value as MatchValue;
    if (!(typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value)))) {
      fail(`${where}.match.value`, 'must be a string, a finite number or a boolean');
    }
    return (md) => resolvePath(md, segments).some((v) => v === value);
  }

  const r = raw.range;
  if (!isObject(r)) fail(`${where}.range`, 'must be an object with gt, gte, lt and/or lte');
  const bounds: Partial<Record<(typeof RANGE_OPS)[number], number>> = {};
  for (const [op, bound] of Object.entries(r)) {
    if (!(RANGE_OPS as readonly string[]).includes(op)) fail(`${where}.range`, `unknown operator "${op}"`);
    if (typeof bound !== 'number' || !Number.isFinite(bound)) fail(`${where}.range.${op}`, 'must be a finite number');
    bounds[op as (typeof RANGE_OPS)[number]] = bound;
  }
  if (Object.keys(bounds).length === 0) fail(`${where}.range`, 'needs at least one of gt, gte, lt, lte');
  const { gt, gte, lt, lte } = bounds;
  const inRange = (v: unknown): boolean =>
    typeof v === 'number' &&
    (gt === undefined || v > gt) &&
    (gte === undefined || v >= gte) &&
    (lt === undefined || v < lt) &&
    (lte === undefined || v <= lte);
  return (md) => resolvePath(md, segments).some(inRange);
}

function compileList(raw: unknown, field: 'must' | 'must_not'): CompiledCondition[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) fail(`.${field}`, 'must be an array of conditions');
  return raw.map((c, i) => compileCondition(c, `.${field}[${i}]`));
}

/**
 * Validates `filter` and returns its predicate, or undefined when it filters
 * nothing out (absent, or no conditions) so the search can skip the callback.
 */
export function compileFilter(filter: unknown): MetadataPredicate | undefined {
  if (filter === undefined || filter === null) return undefined;
  if (!isObject(filter)) fail('', 'must be an object with must and/or must_not');
  for (const k of Object.keys(filter)) {
    if (k !== 'must' && k !== 'must_not') fail('', `unsupported field "${k}" (supported: must, must_not)`);
  }
  const f = filter as Filter;
  const must = compileList(f.must, 'must');
  const mustNot = compileList(f.must_not, 'must_not');
  if (must.length === 0 && mustNot.length === 0) return undefined;
  return (md) => {
    for (const c of must) if (!c(md)) return false;
    for (const c of mustNot) if (c(md)) return false;
    return true;
  };
}
