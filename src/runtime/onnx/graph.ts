/**
 * Graph helpers shared by the splitter and the quantizer: attribute lookups, producers/consumers, topological order,
 * names a node reads (subgraph captures included), and a static element-type propagation used to
 * type stage boundaries when neither value_info nor ONNX Runtime says what a tensor is.
 */
import { isFieldSet } from '@bufbuild/protobuf';
import { type AttributeProto, AttributeProtoSchema, DataType, type GraphProto, type NodeProto, type ValueInfoProto } from './proto.js';
import { tensorTypeOf } from './tensor.js';

export function attr(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

/** An INT attribute's value, or `fallback` when the node has no such attribute (or it holds no int). */
export function attrInt(node: NodeProto, name: string, fallback: number): number {
  const a = attr(node, name);
  return a && isFieldSet(a, AttributeProtoSchema.field.i!) ? Number(a.i) : fallback;
}

/** A FLOAT attribute's value, or `fallback` when the node has no such attribute (or it holds no float). */
export function attrFloat(node: NodeProto, name: string, fallback: number): number {
  const a = attr(node, name);
  return a && isFieldSet(a, AttributeProtoSchema.field.f!) ? a.f : fallback;
}

/**
 * Every tensor name a node reads: its inputs, plus the outer-scope names its subgraphs (If, Loop,
 * Scan bodies) capture. Empty names (omitted optional inputs) are left out.
 */
export function nodeReads(node: NodeProto): string[] {
  const names = node.input.filter((n) => n !== '');
  for (const a of node.attribute) {
    if (a.g) names.push(...capturedNames(a.g));
    for (const g of a.graphs) names.push(...capturedNames(g));
  }
  return names;
}

/** Names a subgraph uses that it neither defines nor receives: captures from the outer scope. */
export function capturedNames(g: GraphProto): string[] {
  const defined = new Set<string>();
  for (const v of g.input) defined.add(v.name);
  for (const t of g.initializer) if (t.name) defined.add(t.name);
  for (const n of g.node) for (const o of n.output) defined.add(o);
  const out = new Set<string>();
  for (const n of g.node) for (const name of nodeReads(n)) if (!defined.has(name)) out.add(name);
  for (const v of g.output) if (!defined.has(v.name)) out.add(v.name);
  return [...out];
}

export interface GraphIndex {
  /** Tensor name → index of the node producing it. */
  producer: Map<string, number>;
  /** Tensor name → indices of the nodes reading it. */
  consumers: Map<string, number[]>;
  initializers: Set<string>;
  graphInputs: Set<string>;
  graphOutputs: Set<string>;
  /** Node indices in a valid topological order, or null if the graph has a cycle. */
  order: number[] | null;
  /** nodeReads() of every node, by index. */
  reads: string[][];
}

export function indexGraph(g: GraphProto): GraphIndex {
  const producer = new Map<string, number>();
  const consumers = new Map<string, number[]>();
  const reads: string[][] = [];
  g.node.forEach((n, i) => {
    for (const o of n.output) if (o !== '') producer.set(o, i);
  });
  g.node.forEach((n, i) => {
    const r = nodeReads(n);
    reads.push(r);
    for (const name of new Set(r)) {
      let list = consumers.get(name);
      if (!list) consumers.set(name, (list = []));
      list.push(i);
    }
  });
  const initializers = new Set(g.initializer.map((t) => t.name));
  const graphInputs = new Set(g.input.map((v) => v.name));
  const graphOutputs = new Set(g.output.map((v) => v.name));

  // ONNX files list nodes in topological order already; keep that order when it is valid (stages
  // then list nodes as the original did) and fall back to Kahn's algorithm otherwise.
  let fileOrderValid = true;
  reads.forEach((r, i) => {
    for (const name of r) {
      const p = producer.get(name);
      if (p !== undefined && p >= i) fileOrderValid = false;
    }
  });
  let order: number[] | null = g.node.map((_, i) => i);
  if (!fileOrderValid) {
    const indegree = new Array<number>(g.node.length).fill(0);
    const deps: number[][] = g.node.map(() => []);
    reads.forEach((r, i) => {
      const seen = new Set<number>();
      for (const name of r) {
        const p = producer.get(name);
        if (p !== undefined && !seen.has(p)) {
          seen.add(p);
          deps[p]!.push(i);
          indegree[i]!++;
        }
      }
    });
    const queue: number[] = [];
    indegree.forEach((d, i) => {
      if (d === 0) queue.push(i);
    });
    for (let head = 0; head < queue.length; head++) {
      for (const c of deps[queue[head]!]!) if (--indegree[c]! === 0) queue.push(c);
    }
    order = queue.length === g.node.length ? queue : null;
  }
  return { producer, consumers, initializers, graphInputs, graphOutputs, order, reads };
}

/** Element type of a ValueInfo, if it is a tensor with one. */
export function elemTypeOf(v: ValueInfoProto | undefined): number | undefined {
  const t = tensorTypeOf(v?.type)?.elemType;
  return t === undefined || t === DataType.UNDEFINED ? undefined : t;
}

const SAME_AS_FIRST = new Set([
  'Abs',
  'Add',
  'Asin',
  'Acos',
  'Atan',
  'AveragePool',
  'BatchNormalization',
  'BiasGelu',
  'Ceil',
  'Celu',
  'Clip',
  'Concat',
  'Conv',
  'ConvTranspose',
  'Cos',
  'Cosh',
  'CumSum',
  'DepthToSpace',
  'Div',
  'Dropout',
  'Einsum',
  'Elu',
  'Erf',
  'Exp',
  'Expand',
  'FastGelu',
  'Flatten',
  'Floor',
  'FusedMatMul',
  'Gather',
  'GatherElements',
  'GatherND',
  'Gelu',
  'Gemm',
  'GlobalAveragePool',
  'GroupNormalization',
  'GroupQueryAttention',
  'HardSigmoid',
  'HardSwish',
  'Identity',
  'InstanceNormalization',
  'LayerNormalization',
  'LeakyRelu',
  'Log',
  'LogSoftmax',
  'LpNormalization',
  'MatMul',
  'Max',
  'MaxPool',
  'Mean',
  'Min',
  'Mish',
  'Mod',
  'Mul',
  'MultiHeadAttention',
  'Attention',
  'Neg',
  'Pad',
  'Pow',
  'PRelu',
  'QuickGelu',
  'Range',
  'Reciprocal',
  'ReduceL1',
  'ReduceL2',
  'ReduceLogSumExp',
  'ReduceMax',
  'ReduceMean',
  'ReduceMin',
  'ReduceProd',
  'ReduceSum',
  'ReduceSumSquare',
  'Relu',
  'Reshape',
  'Resize',
  'RotaryEmbedding',
  'Round',
  'ScatterElements',
  'ScatterND',
  'Selu',
  'Shrink',
  'Sigmoid',
  'Sign',
  'SimplifiedLayerNormalization',
  'Sin',
  'Sinh',
  'SkipLayerNormalization',
  'SkipSimplifiedLayerNormalization',
  'Slice',
  'Softmax',
  'Softplus',
  'Softsign',
  'SpaceToDepth',
  'Split',
  'Sqrt',
  'Squeeze',
  'Sub',
  'Sum',
  'Tan',
  'Tanh',
  'Tile',
  'TopK',
  'Transpose',
  'Trilu',
  'Unsqueeze',
  'Upsample',
  'EmbedLayerNormalization',
  'BiasAdd',
  'BiasSplitGelu',
  'DynamicQuantizeMatMul',
  'MatMulNBits',
  'MatMulIntegerToFloat',
  'Compress',
  'ReverseSequence',
  'Scatter',
  'ThresholdedRelu',
]);
const BOOL_OUT = new Set(['Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'And', 'Or', 'Not', 'Xor', 'IsNaN', 'IsInf']);
const INT64_OUT = new Set(['Shape', 'Size', 'ArgMax', 'ArgMin', 'NonZero']);

/**
 * Propagates element types through the graph for the operators listed above (the same-as-input,
 * boolean and int64 families, Cast, Constant, ConstantOfShape, Where, CastLike, the quantization
 * ops). Seeds: graph inputs, initializers, value_info, graph outputs. Tensors it cannot type are
 * absent from the result.
 */
export function inferElemTypes(g: GraphProto, index: GraphIndex = indexGraph(g)): Map<string, number> {
  const types = new Map<string, number>();
  for (const v of [...g.input, ...g.valueInfo, ...g.output]) {
    const t = elemTypeOf(v);
    if (t !== undefined) types.set(v.name, t);
  }
  for (const t of g.initializer) if (t.name && t.dataType) types.set(t.name, t.dataType);
  const order = index.order ?? g.node.map((_, i) => i);
  for (const i of order) {
    const n = g.node[i]!;
    const inType = (k: number): number | undefined => {
      const name = n.input[k];
      return name ? types.get(name) : undefined;
    };
    const set = (k: number, t: number | undefined): void => {
      const name = n.output[k];
      if (name && t !== undefined && !types.has(name)) types.set(name, t);
    };
    const op = n.opType;
    if (op === 'Constant') {
      const a = n.attribute[0];
      if (a?.t) set(0, a.t.dataType);
      else if (a && (a.name === 'value_float' || a.name === 'value_floats')) set(0, DataType.FLOAT);
      else if (a && (a.name === 'value_int' || a.name === 'value_ints')) set(0, DataType.INT64);
      else if (a && (a.name === 'value_string' || a.name === 'value_strings')) set(0, DataType.STRING);
    } else if (op === 'Cast') {
      const to = attrInt(n, 'to', DataType.UNDEFINED);
      if (to !== DataType.UNDEFINED) set(0, to);
    } else if (op === 'CastLike') {
      set(0, inType(1));
    } else if (op === 'ConstantOfShape') {
      const v = attr(n, 'value');
      set(0, v?.t?.dataType ?? DataType.FLOAT);
    } else if (op === 'Where') {
      set(0, inType(1) ?? inType(2));
    } else if (op === 'EyeLike' || op === 'RandomNormalLike' || op === 'RandomUniformLike') {
      const dt = attrInt(n, 'dtype', DataType.UNDEFINED);
      set(0, dt !== DataType.UNDEFINED ? dt : inType(0));
    } else if (op === 'DequantizeLinear') {
      set(0, inType(1) ?? DataType.FLOAT);
    } else if (op === 'QuantizeLinear') {
      set(0, inType(2) ?? DataType.UINT8);
    } else if (op === 'DynamicQuantizeLinear') {
      set(0, DataType.UINT8);
      set(1, DataType.FLOAT);
      set(2, DataType.UINT8);
    } else if (op === 'MatMulInteger' || op === 'ConvInteger') {
      set(0, DataType.INT32);
    } else if (BOOL_OUT.has(op)) {
      set(0, DataType.BOOL);
    } else if (INT64_OUT.has(op)) {
      set(0, DataType.INT64);
    } else if (op === 'TopK') {
      set(0, inType(0));
      set(1, DataType.INT64);
    } else if (op === 'Gather' || op === 'GatherElements' || op === 'GatherND') {
      set(0, inType(0));
    } else if (op === 'LayerNormalization' || op === 'SkipLayerNormalization' || op === 'SimplifiedLayerNormalization') {
      set(0, inType(0));
      for (let k = 1; k < n.output.length; k++) set(k, DataType.FLOAT);
    } else if (SAME_AS_FIRST.has(op)) {
      const t = inType(0) ?? inType(1);
      for (let k = 0; k < n.output.length; k++) set(k, t);
    }
  }
  return types;
}
