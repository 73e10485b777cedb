/**
 * Splits a transformer graph into stages by layer so that an early exit really skips the compute
 * of the layers after it.
 *
 * Grouping. Every node gets a group: 0 = prefix, k = layer k (1-based), N+1 = suffix.
 *  - A node whose scope (the exporter's module path in its name, e.g. `/encoder/layer.3/...`)
 *    contains a layer segment (`layer.N`, `layers.N`, `h.N`, `block.N`, `blocks.N`, within the
 *    first four path segments) is fixed to that layer. All layer segments must sit under one
 *    container (`/encoder/layer.`, `/model/layers.`, ...) and number 0..N-1 without gaps.
 *  - Other nodes float. `lo` = the latest group among the producers of what a node reads
 *    (graph inputs and initializers count as the prefix), `hi` = the earliest group among its
 *    consumers (a graph output counts as the suffix). Constants and nodes without a scope (names
 *    not starting with `/`) go to `hi`: they join their consumer, and a node needed by several
 *    groups goes to the earliest one that needs it (never duplicated; later groups receive it as
 *    a stage input). Scoped non-layer nodes (embeddings, mask arithmetic, rotary tables) go to
 *    the prefix when they depend on no layer (`lo` = 0), otherwise to `hi` (so a final norm
 *    after the last layer lands in the suffix).
 *  - A layer node that depends on no layer but is read directly by another layer (context an
 *    exporter deduplicated across layers, e.g. rotary cos/sin unsqueezed once and reused) is
 *    hoisted into the prefix, so layer k's stage reads only hidden state k-1 and prefix tensors.
 *  - `lo > hi` for a floating node, or a layer reading from a later layer, means the groups form
 *    a cycle: the graph is reported not splittable. Nodes that feed no graph output are dropped.
 *
 * Stages. Each stage is a standalone ModelProto with the original IR version, opset imports,
 * metadata and model-level extras (local functions): inputs = what its nodes (and their
 * subgraphs) read that an earlier stage produces or that is an original graph input; outputs =
 * what it produces that a later stage reads or that is an original graph output; initializers =
 * exactly those its nodes read (a weight shared by two stages is stored in both).
 *
 * Types. Every stage input needs a tensor type. In order of preference: `options.types` (the
 * caller's, typically from ONNX Runtime's own shape inference, see `inferTypesWithOrt` in
 * cache.ts, which gives element type and shape), the model's graph inputs/outputs/value_info,
 * then element types propagated statically through the operators graph.ts knows (shape left
 * unknown). A boundary nothing can type is declared float with unknown shape and listed in
 * `manifest.notes`. Stage outputs carry a type when known; otherwise ONNX Runtime infers it.
 *
 * Hidden states. `manifest.hiddenStates[k]` names the residual stream after layer k (k = 0: the
 * embeddings output that layer 1 reads): among the tensors stage k passes to stage k+1 (for the
 * last layer: to the suffix or the graph outputs), the one no stage after k+1 also reads (that
 * excludes the mask, rotary tables, shared position biases), latest produced.
 */

import { clone, create } from '@bufbuild/protobuf';
import { elemTypeOf, type GraphIndex, indexGraph, inferElemTypes } from './graph.js';
import {
  DataType,
  type GraphProto,
  GraphProtoSchema,
  type ModelProto,
  ModelProtoSchema,
  type NodeProto,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  type TensorProto,
  type TypeProto,
  TypeProtoSchema,
  type ValueInfoProto,
  ValueInfoProtoSchema,
  withFields,
} from './proto.js';
import { inlineDataBytes, makeTensorType, tensorTypeOf } from './tensor.js';

/** A tensor type: element type (TensorProto.DataType) and dims (unknown rank when absent). */
export interface ValueType {
  elemType: number;
  /** number = fixed, string = symbolic, undefined = unknown dim. */
  dims?: (number | string | undefined)[];
}

export type StageKind = 'prefix' | 'layer' | 'suffix';

export interface StageInfo {
  /** 'prefix', 'layer1' … 'layerN', 'suffix'. */
  name: string;
  kind: StageKind;
  /** 0 for the prefix, 1..N for layers, N+1 for the suffix. */
  layer: number;
  /** File name inside the stage directory. */
  file: string;
  inputs: string[];
  outputs: string[];
  nodes: number;
  initializers: number;
  /** Bytes of initializer data in the stage. */
  weightBytes: number;
}

export interface StageManifest {
  format: 'onnx-stages';
  version: 1;
  /** Layer scope pattern found, e.g. '/encoder/layer.{i}/' (i counts from 0 as in the export). */
  layerScope: string;
  numLayers: number;
  /** Original graph inputs and outputs. */
  graphInputs: string[];
  graphOutputs: string[];
  /** The token-level output ([batch, seq, hidden]): 'last_hidden_state' when the graph has one. */
  outputName: string;
  /** hiddenStates[k]: the residual stream after layer k; [0] = the embeddings output. */
  hiddenStates: string[];
  /** Stages in run order: prefix, layer 1..N, then the suffix if the graph has nodes after the last layer. */
  stages: StageInfo[];
  /** Fallbacks taken (boundaries typed by assumption, dropped nodes). */
  notes: string[];
  /** Filled by ensureStages: the file the stages came from. */
  source?: { file: string; size: number; mtimeMs: number };
  /**
   * Filled by writeStages: the unsplit graph written beside the stages (`model.onnx`), and the one
   * external-data file all of them read their weights from (see external.ts).
   */
  unsplitFile?: string;
  weights?: { file: string; bytes: number; tensors: number };
}

export interface Stage {
  info: StageInfo;
  model: ModelProto;
}

export type SplitResult = { ok: true; stages: Stage[]; manifest: StageManifest } | { ok: false; reason: string };

export interface SplitOptions {
  /** Known tensor types (e.g. from ONNX Runtime); they win over the model's own value_info. */
  types?: Map<string, ValueType>;
}

const LAYER_SEGMENT = /^(layer|layers|h|block|blocks)\.(\d+)$/;
/** How deep (path segments) a layer segment may sit: /a/b/c/layer.N/ at most. */
const MAX_LAYER_DEPTH = 4;

interface LayerScope {
  container: string;
  index: number;
}

/** The layer a scoped name belongs to, e.g. '/encoder/layer.3/attention/Add' → { '/encoder/layer.', 3 }. */
export function layerScopeOf(name: string): LayerScope | null {
  if (!name.startsWith('/')) return null;
  const segs = name.split('/');
  // segs[0] is '' (leading slash), the last segment is the op's own name.
  const last = Math.min(segs.length - 1, MAX_LAYER_DEPTH + 1);
  for (let i = 1; i < last; i++) {
    const m = LAYER_SEGMENT.exec(segs[i]!);
    if (m) return { container: `${segs.slice(0, i).join('/')}/${m[1]}.`, index: Number(m[2]) };
  }
  return null;
}

/** The module path a node belongs to: its name, or its first output's name when the node's name has none. */
function scopeName(node: NodeProto): string {
  if (node.name.startsWith('/')) return node.name;
  const out = node.output.find((o) => o.startsWith('/'));
  return out ?? node.name;
}

function isUnscoped(node: NodeProto): boolean {
  return node.opType === 'Constant' || !scopeName(node).startsWith('/');
}

function fail(reason: string): SplitResult {
  return { ok: false, reason: `not splittable: ${reason}` };
}

/** Picks the token-level output: last_hidden_state, token_embeddings, else the first output. */
function pickOutputName(g: GraphProto): string {
  const names = g.output.map((o) => o.name);
  return names.find((n) => n === 'last_hidden_state') ?? names.find((n) => n === 'token_embeddings') ?? names[0] ?? '';
}

export function splitModel(model: ModelProto, options: SplitOptions = {}): SplitResult {
  const g = model.graph;
  if (g.sparseInitializer.length) return fail('the graph has sparse initializers, which the splitter does not distribute');
  if (g.output.length === 0) return fail('the graph has no outputs');

  // 1. Layer scopes.
  const scopes = g.node.map((n) => layerScopeOf(scopeName(n)));
  const containers = new Map<string, Set<number>>();
  for (const s of scopes) {
    if (!s) continue;
    let set = containers.get(s.container);
    if (!set) containers.set(s.container, (set = new Set()));
    set.add(s.index);
  }
  if (containers.size === 0) {
    return fail(
      'no layer scopes in the node names (looked for /…/layer.N/, /layers.N/, /h.N/, /block.N/ module paths as torch.onnx.export writes them)',
    );
  }
  if (containers.size > 1) {
    return fail(
      `layer scopes under several containers (${[...containers.keys()].map((c) => `${c}N/`).join(', ')}); only one stack of layers is supported`,
    );
  }
  const [container, indexSet] = [...containers][0]!;
  const indices = [...indexSet].sort((a, b) => a - b);
  const base = indices[0]!;
  if (indices.some((v, i) => v !== base + i)) return fail(`layer numbers under ${container}N/ are not contiguous (${indices.join(', ')})`);
  const N = indices.length;
  const SUFFIX = N + 1;

  // 2. Index, liveness, order.
  const index: GraphIndex = indexGraph(g);
  if (!index.order) return fail('the graph has a cycle (no topological order)');
  const order = index.order;
  const position = new Int32Array(g.node.length);
  order.forEach((i, pos) => (position[i] = pos));
  const live = new Uint8Array(g.node.length);
  {
    const stack: number[] = [];
    for (const o of index.graphOutputs) {
      const p = index.producer.get(o);
      if (p !== undefined && !live[p]) {
        live[p] = 1;
        stack.push(p);
      }
    }
    while (stack.length) {
      const i = stack.pop()!;
      for (const name of index.reads[i]!) {
        const p = index.producer.get(name);
        if (p !== undefined && !live[p]) {
          live[p] = 1;
          stack.push(p);
        }
      }
    }
  }
  const notes: string[] = [];
  const dead = live.reduce((n, v) => n + (v ? 0 : 1), 0);
  if (dead > 0) notes.push(`${dead} node(s) feed no graph output and were dropped`);

  // 3. Groups.
  const group = new Int32Array(g.node.length).fill(-1);
  const fixed = new Uint8Array(g.node.length);
  scopes.forEach((s, i) => {
    if (s && !isUnscoped(g.node[i]!)) {
      group[i] = s.index - base + 1;
      fixed[i] = 1;
    }
  });
  /** Reads (through floating nodes) a hoisted node: not hoisted itself, so hoisting never cascades. */
  const fromHoisted = new Uint8Array(g.node.length);
  const hoisted = new Uint8Array(g.node.length);
  const describe = (i: number): string => g.node[i]!.name || `${g.node[i]!.opType} → ${g.node[i]!.output[0] ?? '?'}`;
  const lo = new Int32Array(g.node.length);
  for (const i of order) {
    if (!live[i]) continue;
    let l = 0;
    let from = -1;
    for (const name of index.reads[i]!) {
      const p = index.producer.get(name);
      if (p === undefined || !live[p]) continue;
      if (hoisted[p] || (!fixed[p] && fromHoisted[p])) fromHoisted[i] = 1;
      const gp = fixed[p] ? group[p]! : lo[p]!;
      if (gp > l) {
        l = gp;
        from = p;
      }
    }
    lo[i] = l;
    if (fixed[i] && l > group[i]!) {
      return fail(`${describe(i)} (layer ${group[i]}) reads ${describe(from)}, which depends on layer ${l}: the layers form a cycle`);
    }
    // Hoist shared context: a layer node that depends on no layer (nor on a hoisted node) but
    // that another layer reads directly (exporters deduplicate e.g. the rotary cos/sin Unsqueeze
    // of layer 0 and reuse it in every layer) moves to the prefix, so layer stages read only the
    // previous hidden state and prefix tensors.
    if (fixed[i] && l === 0 && group[i]! > 0 && !fromHoisted[i]) {
      const shared = g.node[i]!.output.some((o) =>
        (index.consumers.get(o) ?? []).some((c) => live[c] && fixed[c] && group[c] !== group[i]),
      );
      if (shared) {
        group[i] = 0;
        hoisted[i] = 1;
      }
    }
  }
  for (let k = order.length - 1; k >= 0; k--) {
    const i = order[k]!;
    if (!live[i] || fixed[i]) continue;
    let h = Number.POSITIVE_INFINITY;
    for (const o of g.node[i]!.output) {
      if (index.graphOutputs.has(o)) h = Math.min(h, SUFFIX);
      for (const c of index.consumers.get(o) ?? []) if (live[c]) h = Math.min(h, group[c]!);
    }
    if (!Number.isFinite(h)) h = SUFFIX;
    if (lo[i]! > h) {
      return fail(`${describe(i)} depends on layer ${lo[i]} but layer ${h} needs it: the layers form a cycle`);
    }
    group[i] = isUnscoped(g.node[i]!) ? h : lo[i] === 0 ? 0 : h;
  }

  // 4. Stage membership.
  const members: number[][] = Array.from({ length: N + 2 }, () => []);
  for (const i of order) if (live[i]) members[group[i]!]!.push(i);
  for (let k = 1; k <= N; k++) if (members[k]!.length === 0) return fail(`layer ${k} has no nodes`);

  /** Groups reading each tensor (a graph output counts as group N+2: "after everything"). */
  const readers = new Map<string, Set<number>>();
  for (const i of order) {
    if (!live[i]) continue;
    for (const name of index.reads[i]!) {
      let set = readers.get(name);
      if (!set) readers.set(name, (set = new Set()));
      set.add(group[i]!);
    }
  }
  for (const o of index.graphOutputs) {
    let set = readers.get(o);
    if (!set) readers.set(o, (set = new Set()));
    set.add(N + 2);
  }

  // 5. Types.
  const declared = new Map<string, ValueInfoProto>();
  for (const v of [...g.valueInfo, ...g.output, ...g.input]) if (tensorTypeOf(v.type)) declared.set(v.name, v);
  const staticTypes = inferElemTypes(g, index);
  const typeFor = (name: string): TypeProto | undefined => {
    const known = options.types?.get(name);
    if (known) return makeTensorType(known.elemType, known.dims);
    const d = declared.get(name);
    if (d?.type && elemTypeOf(d) !== undefined) return clone(TypeProtoSchema, d.type);
    const t = staticTypes.get(name);
    return t !== undefined ? makeTensorType(t) : undefined;
  };

  const initializers = new Map<string, TensorProto>();
  for (const t of g.initializer) if (t.name) initializers.set(t.name, t);
  const valueInfoByName = new Map(g.valueInfo.map((v) => [v.name, v]));
  const width = String(N + 1).length;
  const pad = (k: number): string => String(k).padStart(width, '0');

  const stages: Stage[] = [];
  for (let k = 0; k <= SUFFIX; k++) {
    const nodesIdx = members[k]!;
    if (nodesIdx.length === 0) {
      if (k === 0 || k === SUFFIX) continue;
    }
    const produced = new Set<string>();
    for (const i of nodesIdx) for (const o of g.node[i]!.output) if (o !== '') produced.add(o);
    const inputs: string[] = [];
    const inputSet = new Set<string>();
    const inits: TensorProto[] = [];
    const initSet = new Set<string>();
    for (const i of nodesIdx) {
      for (const name of index.reads[i]!) {
        if (produced.has(name) || inputSet.has(name) || initSet.has(name)) continue;
        const t = initializers.get(name);
        if (t) {
          initSet.add(name);
          inits.push(t);
        } else {
          inputSet.add(name);
          inputs.push(name);
        }
      }
    }
    const outputs: string[] = [];
    for (const name of produced) {
      const rs = readers.get(name);
      if (rs && [...rs].some((r) => r > k)) outputs.push(name);
    }
    const kind: StageKind = k === 0 ? 'prefix' : k === SUFFIX ? 'suffix' : 'layer';
    const stageName = kind === 'layer' ? `layer${k}` : kind;
    const info: StageInfo = {
      name: stageName,
      kind,
      layer: k,
      file: `stage-${pad(k)}-${stageName}.onnx`,
      inputs,
      outputs,
      nodes: nodesIdx.length,
      initializers: inits.length,
      weightBytes: inits.reduce((n, t) => n + inlineDataBytes(t), 0),
    };
    const inputInfos: ValueInfoProto[] = inputs.map((name) => {
      const t = typeFor(name);
      if (t) return create(ValueInfoProtoSchema, { name, type: t });
      notes.push(`${stageName}: input ${name} has no known type; declared float with unknown shape`);
      return create(ValueInfoProtoSchema, { name, type: makeTensorType(DataType.FLOAT) });
    });
    const outputInfos: ValueInfoProto[] = outputs.map((name) => create(ValueInfoProtoSchema, { name, type: typeFor(name) }));
    const boundary = new Set([...inputs, ...outputs]);
    const valueInfo: ValueInfoProto[] = [];
    for (const name of produced) {
      const v = valueInfoByName.get(name);
      if (v && !boundary.has(name)) valueInfo.push(v);
    }
    const stageGraph: GraphProto = create(GraphProtoSchema, {
      node: nodesIdx.map((i) => g.node[i]!),
      name: `${g.name || 'graph'}_${stageName}`,
      initializer: inits,
      input: inputInfos,
      output: outputInfos,
      valueInfo,
    });
    // Everything else the model carries (IR version, producer, functions, unknown fields) as it is.
    const stageModel: ModelProto = withFields(ModelProtoSchema, model, {
      opsetImport: model.opsetImport.map((o) => clone(OperatorSetIdProtoSchema, o)),
      graph: stageGraph,
      metadataProps: [...model.metadataProps, create(StringStringEntryProtoSchema, { key: 'stage', value: stageName })],
    });
    stages.push({ info, model: stageModel });
  }

  // 6. Hidden states.
  const stageByGroup = new Map(stages.map((s) => [s.info.layer, s]));
  const hiddenStates: string[] = [];
  for (let k = 0; k <= N; k++) {
    const stage = stageByGroup.get(k);
    if (!stage)
      return fail(k === 0 ? 'nothing precedes layer 1 (no embeddings found outside the layer scopes)' : `layer ${k} has no stage`);
    const next = k === N ? [SUFFIX, N + 2] : [k + 1];
    const candidates = stage.info.outputs.filter((name) => {
      const rs = readers.get(name) ?? new Set<number>();
      return [...rs].some((r) => next.includes(r));
    });
    const exclusive = candidates.filter((name) => {
      const rs = readers.get(name) ?? new Set<number>();
      // Read again after the next stage (mask, rotary tables, shared biases): not the residual
      // stream. Being a graph output as well (all-hidden-states exports) does not disqualify.
      return ![...rs].some((r) => r > k + 1 && r !== N + 2 && !next.includes(r));
    });
    const pool = exclusive.length ? exclusive : candidates;
    if (pool.length === 0) {
      return fail(
        k === N
          ? `the last layer (${k}) produces nothing the suffix or the graph outputs use`
          : `layer ${k} passes nothing to layer ${k + 1}`,
      );
    }
    pool.sort((a, b) => position[index.producer.get(b)!]! - position[index.producer.get(a)!]!);
    hiddenStates.push(pool[0]!);
  }

  const manifest: StageManifest = {
    format: 'onnx-stages',
    version: 1,
    layerScope: `${container}{i}/`,
    numLayers: N,
    graphInputs: g.input.filter((v) => !initializers.has(v.name)).map((v) => v.name),
    graphOutputs: g.output.map((v) => v.name),
    outputName: pickOutputName(g),
    hiddenStates,
    stages: stages.map((s) => s.info),
    notes,
  };
  return { ok: true, stages, manifest };
}
