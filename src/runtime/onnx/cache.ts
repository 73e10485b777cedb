/**
 * Stage cache: split a model once, write its stages and manifest to disk, reuse them next start.
 *
 * Layout: `<model dir>/.stages/<key>/` holding `manifest.json`, `stage-NN-<name>.onnx`, the unsplit
 * graph `model.onnx` and `weights.bin`, the one external-data file all of those read, where
 * key = first 16 hex digits of sha256("<SPLITTER_VERSION>:<size>:<mtimeMs>") of the .onnx file
 * (so replacing the model, or a new splitter, gives a fresh directory; older keys are pruned).
 * The directory is built under a temporary name and renamed into place, so concurrent starts
 * (several workers) never see a half-written cache: the first rename wins, the others reuse it.
 * When the model directory is not writable the cache goes to
 * `<os.tmpdir()>/onnx-stages/<sha of the model's absolute path>/<key>/` instead.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import ort from 'onnxruntime-node';
import { externalizeWeights, inlineExternalData } from './external.js';
import { loadModel, saveModel } from './model.js';
import { DataType, encodeModel, GraphProtoSchema, type ModelProto, ModelProtoSchema, ValueInfoProtoSchema, withFields } from './proto.js';
import { type SplitResult, type StageManifest, splitModel, type ValueType } from './split.js';
import { forEachTensor, isExternal } from './tensor.js';

/** Bump when the splitter's output changes, so caches written by older code are rebuilt. */
export const SPLITTER_VERSION = 3;

const ORT_TYPES: Record<string, number> = {
  float32: DataType.FLOAT,
  uint8: DataType.UINT8,
  int8: DataType.INT8,
  uint16: DataType.UINT16,
  int16: DataType.INT16,
  int32: DataType.INT32,
  int64: DataType.INT64,
  string: DataType.STRING,
  bool: DataType.BOOL,
  float16: DataType.FLOAT16,
  float64: DataType.DOUBLE,
  uint32: DataType.UINT32,
  uint64: DataType.UINT64,
  bfloat16: DataType.BFLOAT16,
};

/**
 * Types of intermediate tensors as ONNX Runtime's shape inference sees them: the names are added
 * as (untyped) graph outputs of a copy of the model, loaded with optimizations off, and read back
 * from the session's output metadata (element type and shape, symbolic dims included).
 */
export async function inferTypesWithOrt(model: ModelProto, names: string[]): Promise<Map<string, ValueType>> {
  const types = new Map<string, ValueType>();
  const existing = new Set(model.graph.output.map((o) => o.name));
  const extra = names.filter((n) => !existing.has(n));
  const output = [...model.graph.output, ...extra.map((name) => create(ValueInfoProtoSchema, { name }))];
  const probe = withFields(ModelProtoSchema, model, { graph: withFields(GraphProtoSchema, model.graph, { output }) });
  const session = await ort.InferenceSession.create(encodeModel(probe), { graphOptimizationLevel: 'disabled', logSeverityLevel: 3 });
  try {
    for (const meta of session.outputMetadata ?? []) {
      if (!meta.isTensor) continue;
      const elemType = ORT_TYPES[meta.type];
      if (elemType === undefined) continue;
      // An empty shape means "unknown" as often as "scalar": leave the rank open then.
      const dims = meta.shape.length
        ? meta.shape.map((d) => (typeof d === 'number' ? (d >= 0 ? d : undefined) : d === '' ? undefined : d))
        : undefined;
      types.set(meta.name, dims ? { elemType, dims } : { elemType });
    }
  } finally {
    await session.release();
  }
  return types;
}

/** splitModel, with boundary types from ONNX Runtime (falls back to static typing if that fails). */
export async function splitModelTyped(model: ModelProto): Promise<SplitResult> {
  const first = splitModel(model);
  if (!first.ok) return first;
  const boundary = new Set<string>();
  for (const s of first.manifest.stages) for (const n of [...s.inputs, ...s.outputs]) boundary.add(n);
  for (const n of first.manifest.graphInputs) boundary.delete(n);
  let types: Map<string, ValueType>;
  try {
    types = await inferTypesWithOrt(model, [...boundary]);
  } catch (err) {
    first.manifest.notes.push(
      `ONNX Runtime shape inference failed (${(err as Error).message.split('\n')[0]}); boundaries typed statically`,
    );
    return first;
  }
  return splitModel(model, { types });
}

export interface EnsureStagesResult {
  dir: string;
  manifest: StageManifest;
  /** True when an existing cache was used. */
  reused: boolean;
}

export class NotSplittableError extends Error {
  override name = 'NotSplittableError';
}

export function readManifest(dir: string): StageManifest {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as StageManifest;
  if (manifest.format !== 'onnx-stages' || manifest.version !== 1) throw new Error(`${dir}/manifest.json: unknown format`);
  return manifest;
}

function validCache(dir: string): StageManifest | null {
  try {
    const manifest = readManifest(dir);
    const files = [...manifest.stages.map((s) => s.file), manifest.unsplitFile, manifest.weights?.file];
    for (const f of files) if (f !== undefined && !fs.statSync(path.join(dir, f)).isFile()) return null;
    return manifest;
  } catch {
    return null;
  }
}

export function cacheKey(onnxPath: string, version: string = String(SPLITTER_VERSION)): string {
  const st = fs.statSync(onnxPath);
  return crypto.createHash('sha256').update(`${version}:${st.size}:${st.mtimeMs}`).digest('hex').slice(0, 16);
}

function writable(dir: string): boolean {
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.W_OK);
    const probe = path.join(dir, `.probe-${process.pid}-${Date.now()}`);
    fs.writeFileSync(probe, '');
    fs.rmSync(probe);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where files derived from `onnxPath` are cached: `<model dir>/.<kind>`, or, when the model
 * directory is not writable, `<os.tmpdir()>/onnx-<kind>/<sha of the model's absolute path>`.
 */
export function cacheRoot(onnxPath: string, kind: string): string {
  const beside = path.join(path.dirname(path.resolve(onnxPath)), `.${kind}`);
  if (writable(beside)) return beside;
  const id = crypto.createHash('sha256').update(path.resolve(onnxPath)).digest('hex').slice(0, 16);
  return path.join(os.tmpdir(), `onnx-${kind}`, id);
}

/** Where the stages of `onnxPath` live (or would): `<model dir>/.stages`, or a tmpdir fallback. */
export function stagesRoot(onnxPath: string, cacheDir?: string): string {
  return cacheDir ?? cacheRoot(onnxPath, 'stages');
}

/** File names inside a stage directory besides the stages themselves. */
export const UNSPLIT_FILE = 'model.onnx';
export const WEIGHTS_FILE = 'weights.bin';

/**
 * Writes stages and manifest into `dir` (created if needed), with every weight in one shared
 * external-data file (`weights.bin`). With `unsplit`, the whole graph is written beside them as
 * `model.onnx`, reading the same file: the stages then cost no second copy of the weights.
 */
export function writeStages(result: Extract<SplitResult, { ok: true }>, dir: string, unsplit?: ModelProto): void {
  fs.mkdirSync(dir, { recursive: true });
  const models = result.stages.map((s) => s.model);
  const weights = externalizeWeights(unsplit ? [unsplit, ...models] : models, path.join(dir, WEIGHTS_FILE));
  for (const s of result.stages) saveModel(s.model, path.join(dir, s.info.file));
  if (unsplit) {
    saveModel(unsplit, path.join(dir, UNSPLIT_FILE));
    result.manifest.unsplitFile = UNSPLIT_FILE;
  }
  result.manifest.weights = { file: WEIGHTS_FILE, bytes: weights.weightBytes, tensors: weights.tensors };
  fs.writeFileSync(path.join(dir, 'manifest.json'), `${JSON.stringify(result.manifest, null, 2)}\n`);
}

/** Loads a model and inlines external data (stages are written elsewhere, so relative paths would break). */
export function loadForSplit(onnxPath: string): ModelProto {
  const model = loadModel(onnxPath);
  let external = false;
  forEachTensor(model.graph, (t) => {
    if (isExternal(t)) external = true;
  });
  if (external) inlineExternalData(model, path.dirname(path.resolve(onnxPath)));
  return model;
}

/**
 * Returns the stage directory for `onnxPath`, splitting the model on first use. `cacheDir`
 * replaces `<model dir>/.stages`. Throws NotSplittableError (message says why) if the graph
 * cannot be split.
 */
export async function ensureStages(onnxPath: string, cacheDir?: string): Promise<EnsureStagesResult> {
  const key = cacheKey(onnxPath);
  const root = stagesRoot(onnxPath, cacheDir);
  const dir = path.join(root, key);
  const cached = validCache(dir);
  if (cached) return { dir, manifest: cached, reused: true };

  const model = loadForSplit(onnxPath);
  const result = await splitModelTyped(model);
  if (!result.ok) throw new NotSplittableError(`${onnxPath}: ${result.reason}`);
  const st = fs.statSync(onnxPath);
  result.manifest.source = { file: path.resolve(onnxPath), size: st.size, mtimeMs: st.mtimeMs };

  const tmp = path.join(root, `${key}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  writeStages(result, tmp, model);
  try {
    fs.renameSync(tmp, dir);
  } catch (err) {
    // Another process finished first: use its copy.
    fs.rmSync(tmp, { recursive: true, force: true });
    const other = validCache(dir);
    if (other) return { dir, manifest: other, reused: true };
    throw err;
  }
  // Older keys belong to previous versions of the model file (or of the splitter).
  for (const entry of fs.readdirSync(root)) {
    if (entry === key || entry.includes('.tmp-')) continue;
    if (/^[0-9a-f]{16}$/.test(entry)) fs.rmSync(path.join(root, entry), { recursive: true, force: true });
  }
  return { dir, manifest: result.manifest, reused: false };
}

/**
 * The unsplit graph with its weights moved to one page-aligned external-data file, for when there
 * are no stages (layer exit off, or a graph that cannot be split): ONNX Runtime then maps the
 * weights from the file, so the workers of a process share them instead of each decoding its own
 * copy. Cached in `<model dir>/.shared/<key>/` like the stages. Returns the graph's path.
 */
export function ensureSharedGraph(onnxPath: string, cacheDir?: string): string {
  const dir = path.join(cacheDir ?? cacheRoot(onnxPath, 'shared'), cacheKey(onnxPath, `shared-v${SPLITTER_VERSION}`));
  const file = path.join(dir, UNSPLIT_FILE);
  if (fs.existsSync(file) && fs.existsSync(path.join(dir, WEIGHTS_FILE))) return file;
  const tmp = `${dir}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  fs.mkdirSync(tmp, { recursive: true });
  const model = loadForSplit(onnxPath);
  externalizeWeights([model], path.join(tmp, WEIGHTS_FILE));
  saveModel(model, path.join(tmp, UNSPLIT_FILE));
  try {
    fs.renameSync(tmp, dir);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (!fs.existsSync(file)) throw err;
  }
  return file;
}

/**
 * The .onnx file a CLI argument names: the file itself, or in a model directory `model.onnx`
 * then `onnx/model.onnx` (the same order as the runtime's model-dir lookup).
 */
export function resolveOnnxPath(target: string, fileName = 'model.onnx'): string {
  const abs = path.resolve(target);
  if (fs.existsSync(abs) && fs.statSync(abs).isFile()) return abs;
  for (const sub of ['', 'onnx']) {
    const candidate = path.join(abs, sub, fileName);
    if (fs.existsSync(candidate)) return candidate;
  }
  throw new Error(`no ${fileName} in ${abs} or ${path.join(abs, 'onnx')}`);
}

/** The directory holding tokenizer.json for a model file (its own directory or the one above `onnx/`). */
export function findTokenizer(onnxPath: string): string | undefined {
  const dir = path.dirname(onnxPath);
  for (const d of [dir, path.dirname(dir)]) {
    const candidate = path.join(d, 'tokenizer.json');
    if (fs.existsSync(candidate)) return candidate;
  }
  return undefined;
}
