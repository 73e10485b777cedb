/**
 * ONNX codec: load time and peak memory on the MiniLM-shaped model (90 MB), before and after the
 * hand-written protobuf codec was replaced by @bufbuild/protobuf.
 *
 *   flock /tmp/bench.lock npx tsx benchmarks/onnx-codec.ts [--rounds 5] [--before <git ref>] [--model <file.onnx>]
 *
 * Implementations, each run in its own child process (so VmHWM is its own), alternating per round:
 *  - hand-written: src/runtime/onnx/{wire,model}.ts as of `--before` (read with `git show`),
 *  - proto.ts: the library's fromBinary, and encodeModel / saveModel (toBinary per message, weights
 *    referenced on the path ModelProto.graph → GraphProto.initializer → TensorProto.raw_data),
 *  - toBinary: the library alone (fromBinary + toBinary), which proto.ts's chunked writer avoids.
 * Operations: `encode` = decode + encode into one buffer; `save` = decode + write the file.
 * Memory figure: VmHWM minus the RSS after the file was read, i.e. what decoding and encoding add.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ensureMiniLM, ROOT } from './lib.js';

/** The last commit with the hand-written codec. */
const DEFAULT_BEFORE = '49243fc';

type Impl = 'hand-written' | 'proto.ts' | 'toBinary';
type Op = 'encode' | 'save';
interface Sample {
  decodeMs: number;
  encodeMs: number;
  baseKb: number;
  hwmKb: number;
}

const statusKb = (field: string): number =>
  Number(new RegExp(`${field}:\\s+(\\d+)`).exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1]);

/** Child: one decode + encode (or save) of `file` with one implementation; prints a Sample as JSON. */
async function child(impl: Impl, op: Op, file: string, beforeDir: string): Promise<void> {
  type Codec = { decode(b: Uint8Array): unknown; encode(m: unknown): Uint8Array; save(m: unknown, f: string): void };
  let codec: Codec;
  if (impl === 'hand-written') {
    const old = await import(path.join(beforeDir, 'model.ts'));
    codec = { decode: old.decodeModel, encode: old.encodeModel, save: old.saveModel };
  } else if (impl === 'proto.ts') {
    const proto = await import('../src/runtime/onnx/proto.js');
    const model = await import('../src/runtime/onnx/model.js');
    codec = { decode: proto.decodeModel, encode: proto.encodeModel as Codec['encode'], save: model.saveModel as Codec['save'] };
  } else {
    const { fromBinary, toBinary } = await import('@bufbuild/protobuf');
    const { ModelProtoSchema } = await import('../src/runtime/onnx/gen/onnx_pb.js');
    type M = ReturnType<typeof fromBinary<typeof ModelProtoSchema>>;
    codec = {
      decode: (b) => fromBinary(ModelProtoSchema, b),
      encode: (m) => toBinary(ModelProtoSchema, m as M),
      save: (m, f) => fs.writeFileSync(f, toBinary(ModelProtoSchema, m as M)),
    };
  }
  const bytes = fs.readFileSync(file);
  const out = path.join(os.tmpdir(), `onnx-codec-bench-${process.pid}.onnx`);
  const baseKb = statusKb('VmRSS');
  const t0 = performance.now();
  const model = codec.decode(bytes);
  const t1 = performance.now();
  let size: number;
  if (op === 'encode') size = codec.encode(model).byteLength;
  else {
    codec.save(model, out);
    size = fs.statSync(out).size;
    fs.rmSync(out);
  }
  const t2 = performance.now();
  if (size !== bytes.byteLength) throw new Error(`${impl} ${op}: ${size} bytes out of ${bytes.byteLength}`);
  const sample: Sample = { decodeMs: t1 - t0, encodeMs: t2 - t1, baseKb, hwmKb: statusKb('VmHWM') };
  console.log(JSON.stringify(sample));
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '5' },
      before: { type: 'string', default: DEFAULT_BEFORE },
      model: { type: 'string' },
    },
  });
  const file = values.model ?? path.join(ensureMiniLM(), 'onnx/model.onnx');
  const beforeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'onnx-codec-before-'));
  try {
    for (const f of ['wire.ts', 'model.ts']) {
      const text = execFileSync('git', ['show', `${values.before}:src/runtime/onnx/${f}`], { cwd: ROOT, encoding: 'utf8' });
      fs.writeFileSync(path.join(beforeDir, f), text);
    }
    const impls: Impl[] = ['hand-written', 'proto.ts', 'toBinary'];
    const ops: Op[] = ['encode', 'save'];
    const samples = new Map<string, Sample[]>();
    const rounds = Number(values.rounds);
    for (let r = 0; r < rounds; r++) {
      for (const op of ops) {
        // Rotate the order each round so no implementation always runs first.
        for (let k = 0; k < impls.length; k++) {
          const impl = impls[(k + r) % impls.length]!;
          const res = spawnSync(process.execPath, ['--import', 'tsx', import.meta.filename, '--child', impl, op, file, beforeDir], {
            cwd: ROOT,
            encoding: 'utf8',
          });
          if (res.status !== 0) throw new Error(`${impl} ${op} failed:\n${res.stderr}`);
          const key = `${impl}|${op}`;
          samples.set(key, [...(samples.get(key) ?? []), JSON.parse(res.stdout.trim().split('\n').at(-1)!) as Sample]);
        }
      }
    }
    const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
    const mb = (kb: number): number => kb / 1024;
    console.log(`CPU: ${cpu}, ${os.availableParallelism()} cores; node ${process.version}; ${rounds} rounds, medians`);
    console.log(
      `model: ${path.relative(ROOT, file)} (${(fs.statSync(file).size / 2 ** 20).toFixed(1)} MiB); hand-written = ${values.before}`,
    );
    console.log('| operation | implementation | decode ms | encode/save ms | peak added MiB (VmHWM − RSS after read) | peak VmHWM MiB |');
    console.log('| --- | --- | ---: | ---: | ---: | ---: |');
    const summary = new Map<string, { decode: number; encode: number; added: number; hwm: number }>();
    for (const op of ops) {
      for (const impl of impls) {
        const s = samples.get(`${impl}|${op}`)!;
        const row = {
          decode: median(s.map((x) => x.decodeMs)),
          encode: median(s.map((x) => x.encodeMs)),
          added: median(s.map((x) => mb(x.hwmKb - x.baseKb))),
          hwm: median(s.map((x) => mb(x.hwmKb))),
        };
        summary.set(`${impl}|${op}`, row);
        console.log(
          `| ${op} | ${impl} | ${row.decode.toFixed(1)} | ${row.encode.toFixed(0)} | ${row.added.toFixed(0)} | ${row.hwm.toFixed(0)} |`,
        );
      }
    }
    for (const op of ops) {
      const before = summary.get(`hand-written|${op}`)!;
      for (const impl of ['proto.ts', 'toBinary'] as const) {
        const after = summary.get(`${impl}|${op}`)!;
        console.log(
          `${op}: ${impl} / hand-written: decode ×${(after.decode / before.decode).toFixed(2)}, encode ×${(after.encode / before.encode).toFixed(2)}, ` +
            `peak VmHWM ×${(after.hwm / before.hwm).toFixed(2)} (${(after.hwm - before.hwm).toFixed(0)} MiB)`,
        );
      }
    }
  } finally {
    fs.rmSync(beforeDir, { recursive: true, force: true });
  }
}

const argv = process.argv.slice(2);
if (argv[0] === '--child') await child(argv[1] as Impl, argv[2] as Op, argv[3]!, argv[4]!);
else await main();
