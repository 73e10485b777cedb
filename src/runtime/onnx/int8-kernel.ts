/**
 * What ONNX Runtime's int8 kernel does on this CPU, measured rather than inferred from flags:
 * does a pair of u8×s8 products clip at the int16 limit (MLAS's AVX2 VPMADDUBSW path on x86
 * without VNNI) or is it summed exactly (VNNI, AMX, arm64, ...)? One DynamicQuantizeMatMul of a
 * row of ones (quantized by ORT to 255) with a column of weights stored as 127 (scale 1/127, so
 * the real weights are 1) tells: exact gives K, a clipping kernel gives K/2 · 32767/(255·127).
 * The answer is the ground truth for this process (it also holds under an emulator, where the
 * /proc/cpuinfo flags describe the host, not the CPU that runs the code).
 */
import ort from 'onnxruntime-node';
import { DataType, encodeModel, type ModelProto, makeModel } from './proto.js';
import { makeTensor, makeValueInfo } from './tensor.js';

const K = 64;
const ROWS = 4;

/** The probe graph: y = DynamicQuantizeMatMul(x, W) with W = 127 (int8), scale 1/127, zero point 0. */
export function saturationProbeModel(weight = 127): ModelProto {
  return makeModel({
    irVersion: 8n,
    opsetImport: [
      { domain: '', version: 17n },
      { domain: 'com.microsoft', version: 1n },
    ],
    graph: {
      name: 'int8-saturation-probe',
      node: [
        {
          name: 'probe',
          opType: 'DynamicQuantizeMatMul',
          domain: 'com.microsoft',
          input: ['x', 'w', 's', 'z'],
          output: ['y'],
        },
      ],
      initializer: [
        makeTensor('w', DataType.INT8, [K, 1], new Int8Array(K).fill(weight)),
        makeTensor('s', DataType.FLOAT, [], Float32Array.of(1 / weight)),
        makeTensor('z', DataType.INT8, [], Int8Array.of(0)),
      ],
      input: [makeValueInfo('x', DataType.FLOAT, [ROWS, K])],
      output: [makeValueInfo('y', DataType.FLOAT, [ROWS, 1])],
    },
  });
}

/** Runs the probe graph on a row of ones; returns the first output (K when summed exactly). */
export async function runSaturationProbe(weight = 127): Promise<number> {
  const session = await ort.InferenceSession.create(encodeModel(saturationProbeModel(weight)), {
    intraOpNumThreads: 1,
    logSeverityLevel: 3,
  });
  try {
    const x = new ort.Tensor('float32', new Float32Array(ROWS * K).fill(1), [ROWS, K]);
    return ((await session.run({ x })).y!.data as Float32Array)[0]!;
  } finally {
    await session.release();
  }
}

/** What an exact kernel returns, and what a kernel clipping each pair sum at 32767 returns. */
export const PROBE_EXACT = K;
export const PROBE_CLIPPED = (K / 2) * (32767 / (255 * 127));

let measured: Promise<boolean> | undefined;

/** True when this CPU's u8×s8 kernel clips pair sums (full-range int8 weights lose accuracy here). */
export function int8PairsSaturate(): Promise<boolean> {
  measured ??= runSaturationProbe().then((y) => Math.abs(y - PROBE_CLIPPED) < Math.abs(y - PROBE_EXACT));
  return measured;
}
