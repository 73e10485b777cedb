/**
 * An inference worker: owns the ONNX Runtime sessions of the graphs the model's description
 * names (it prepares nothing itself: see description.ts), turns batches of token ids into padded
 * tensors, runs the graph and pools the result. Runs in a worker thread because `session.run`
 * holds its thread for the whole inference.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import type { TokenSpan } from '../pooling/index.js';
import { pool } from '../pooling/index.js';
import { type GraphInputs, graphInputs, padFeeds } from './feeds.js';
import { StagedRunner } from './onnx/staged.js';
import type { FromWorker, GraphInfo, ModelWorkerConfig, RunMessage, WorkerConfig } from './protocol.js';

const config = workerData as WorkerConfig;
const port = parentPort!;
const send = (msg: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(msg, transfer);

/**
 * Lowers this thread's scheduling priority (Linux: nice is per thread, and the intra-op threads
 * ONNX Runtime starts later inherit it). Inference then soaks up whatever CPU is left while the
 * HTTP thread, which needs little, is served first: /health and request parsing stay responsive
 * when the cores are saturated.
 */
function lowerPriority(nice: number): void {
  if (nice === 0) return;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, nice);
  } catch {
    // Not Linux, or not permitted: run at the normal priority.
  }
}

function sessionOptions(provider: string): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: [provider],
    intraOpNumThreads: config.intraOpThreads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    // Without the arena, activations go back to the allocator after each run instead of staying
    // reserved per session at the largest batch's peak (see WorkerConfig.memoryArena).
    enableCpuMemArena: config.memoryArena,
    logSeverityLevel: 3,
  };
}

interface Graph {
  model: ModelWorkerConfig;
  /** The unsplit graph, when the description provides one; else full depth runs through the stages. */
  session: ort.InferenceSession | null;
  /** Per-layer stages, when the description provides them. */
  staged: StagedRunner | null;
  inputs: GraphInputs;
  outputName: string;
  pooledOutput: boolean;
}

/** Loads the graphs the description names, with the first execution provider that can. */
async function loadGraphs(model: ModelWorkerConfig, providers: string[]): Promise<{ graph: Graph; provider: string; errors: string[] }> {
  const { unsplit, stagesDir } = model.graphs;
  const errors: string[] = [];
  for (const provider of providers) {
    let session: ort.InferenceSession | null = null;
    try {
      if (unsplit) session = await ort.InferenceSession.create(unsplit, sessionOptions(provider));
      const staged = stagesDir ? await StagedRunner.create(stagesDir, sessionOptions(provider)) : null;
      return { graph: describe(model, session, staged), provider, errors };
    } catch (err) {
      await session?.release();
      errors.push(`${provider}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`no execution provider could load ${unsplit ?? stagesDir}: ${errors.join('; ')}`);
}

function describe(model: ModelWorkerConfig, session: ort.InferenceSession | null, staged: StagedRunner | null): Graph {
  const inputs = graphInputs(session ?? staged!);
  if (!session) return { model, session, staged, inputs, outputName: staged!.manifest.outputName, pooledOutput: false };
  const names = session.outputNames;
  if (model.task === 'rerank') {
    if (!names.includes('logits'))
      throw new Error(`${model.graphs.unsplit}: a reranker needs a logits output (outputs: ${names.join(', ')})`);
    return { model, session, staged, inputs, outputName: 'logits', pooledOutput: false };
  }
  const pooledOutput = names.includes('sentence_embedding');
  const outputName = pooledOutput ? 'sentence_embedding' : names.includes('last_hidden_state') ? 'last_hidden_state' : names[0]!;
  return { model, session, staged, inputs, outputName, pooledOutput };
}

/**
 * Token Prepending: after layer l (first ≤ l ≤ last), each sequence's placeholder state (its first
 * real token) becomes the state of its last real token, before layer l + 1 reads it. Edits the
 * stage's output in place.
 */
function prependHook(model: ModelWorkerConfig, spans: TokenSpan[], seqLen: number): (layer: number, hidden: ort.Tensor) => void {
  const tp = model.tokenPrepending!;
  const dim = model.hiddenSize;
  return (layer, hidden) => {
    if (layer < tp.firstLayer || layer > tp.lastLayer) return;
    const data = hidden.data as Float32Array;
    spans.forEach((span, b) => {
      const row = b * seqLen * dim;
      const last = row + (span.start + span.length - 1) * dim;
      data.copyWithin(row + span.start * dim, last, last + dim);
    });
  };
}

/** Pads the batch to its longest sequence on the model's side and builds the graph's feeds. */
function buildFeeds(graph: Graph, msg: RunMessage): { feeds: Record<string, ort.Tensor>; seqLen: number; spans: TokenSpan[] } {
  const rows: Int32Array[] = [];
  let offset = 0;
  for (const len of msg.lengths) {
    rows.push(msg.ids.subarray(offset, offset + len));
    offset += len;
  }
  const { feeds, seqLen, starts } = padFeeds(rows, graph.inputs, { side: graph.model.paddingSide, segments: msg.segments });
  const spans = starts.map((start, b) => ({ start, length: msg.lengths[b]!, skip: msg.skips[b]! }));
  return { feeds, seqLen, spans };
}

/** Full depth without hooks runs the unsplit graph (fastest); anything else runs the stages. */
async function forward(
  graph: Graph,
  msg: RunMessage,
  feeds: Record<string, ort.Tensor>,
  spans: TokenSpan[],
  seqLen: number,
): Promise<ort.Tensor> {
  const { layer, tokenPrepending } = msg.plan;
  const model = graph.model;
  if ((model.task === 'rerank' || (layer === model.numLayers && !tokenPrepending)) && graph.session) {
    return (await graph.session.run(feeds, [graph.outputName]))[graph.outputName]!;
  }
  if (!graph.staged) throw new Error('this model has no per-layer stages');
  const stageFeeds = Object.fromEntries(graph.staged.inputNames.map((n) => [n, feeds[n]!]));
  return graph.staged.run(stageFeeds, {
    exitLayer: layer,
    applySuffix: layer === model.numLayers || model.finalNormOnExit,
    afterLayer: tokenPrepending ? prependHook(model, spans, seqLen) : undefined,
  });
}

async function run(graph: Graph, msg: RunMessage): Promise<void> {
  const { feeds, seqLen, spans } = buildFeeds(graph, msg);
  const started = performance.now();
  const out = await forward(graph, msg, feeds, spans, seqLen);
  const data = out.data as Float32Array;
  const model = graph.model;
  const fullGraph = graph.session !== null && msg.plan.layer === model.numLayers && !msg.plan.tokenPrepending;
  // Token Prepending pools the last token, whatever the model's usual pooling.
  const mode = msg.plan.tokenPrepending ? 'last' : model.pooling;
  // A reranker's logits ([n, 1]) are the answer as they are.
  const vectors =
    model.task === 'rerank' || (graph.pooledOutput && fullGraph)
      ? new Float32Array(data)
      : pool(mode, data, seqLen, model.hiddenSize, spans);
  const inferenceMs = performance.now() - started;
  out.dispose?.();
  if (msg.crash) {
    // Outside the promise chain, so it is uncaught and ends this worker like a real failure.
    setImmediate(() => {
      throw new Error('failure drill: worker crashed mid-batch');
    });
    return;
  }
  send({ type: 'result', batchId: msg.batchId, vectors, inferenceMs }, [vectors.buffer as ArrayBuffer]);
}

/** The output's last dimension must be what the description says: hidden size, or 1 logit. */
function checkWidth(graph: Graph): void {
  const meta = graph.session?.outputMetadata?.find((m) => m.name === graph.outputName);
  const last = meta?.isTensor ? meta.shape[meta.shape.length - 1] : undefined;
  const want = graph.model.task === 'rerank' ? 1 : graph.model.hiddenSize;
  if (typeof last === 'number' && last !== want) {
    const said = graph.model.task === 'rerank' ? 'a reranker has one logit per pair ([n, 1])' : `config.json says hidden_size ${want}`;
    throw new Error(`${graph.model.graphs.unsplit}: output ${graph.outputName} has width ${last} but ${said}`);
  }
}

async function main(): Promise<void> {
  lowerPriority(config.nice);
  const graphs: Graph[] = [];
  let provider = '';
  let errors: string[] = [];
  try {
    for (const model of config.models) {
      // The first model decides the provider; the others must load on it too.
      const loaded = await loadGraphs(model, graphs.length === 0 ? config.providers : [provider]);
      if (graphs.length === 0) ({ provider, errors } = loaded);
      checkWidth(loaded.graph);
      graphs.push(loaded.graph);
    }
  } catch (err) {
    send({ type: 'init-error', message: (err as Error).message });
    return;
  }
  // One batch at a time: the pool never sends a second before the first answers, and ORT's
  // intra-op threads already use the cores this worker was given.
  port.on('message', (msg: RunMessage) => {
    run(graphs[msg.model]!, msg).catch((err: unknown) => send({ type: 'error', batchId: msg.batchId, message: (err as Error).message }));
  });
  const models: GraphInfo[] = graphs.map((g) => ({
    inputNames: [...g.inputs.names],
    outputName: g.outputName,
    pooledOutput: g.pooledOutput,
  }));
  send({ type: 'ready', provider, providerErrors: errors, models });
}

void main();
