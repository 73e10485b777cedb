/**
 * Regenerates src/runtime/onnx/gen/onnx_pb.ts, the ONNX protobuf messages for @bufbuild/protobuf,
 * from an onnx.proto that a package on this machine ships (npm run onnx:generate). The schema file
 * itself is not part of this repository: Debian's python3-onnx ships it, or point ONNX_PROTO at one.
 * `--check` compares instead of writing (exit 1 when the committed file is stale).
 *
 * Pipeline: buf (npm @bufbuild/buf, no system protoc) compiles the .proto and runs protoc-gen-es
 * (npm @bufbuild/protoc-gen-es), then Biome formats the result so the tree's lint passes.
 * protoc-gen-es is pinned at 2.13.0, the last release that supports Node 20 (2.14+ declare
 * node >= 22, and npm warns about them on every install); the runtime library is not pinned.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const GENERATED_FILE = path.join(ROOT, 'src/runtime/onnx/gen/onnx_pb.ts');
const DEBIAN_ONNX = '/usr/lib/python3/dist-packages/onnx';

export interface ProtoSource {
  file: string;
  /** Who ships it and which ONNX release it is, for the generated file's header. */
  label: string;
}

/** The onnx.proto to generate from: $ONNX_PROTO, else Debian's python3-onnx; undefined when neither exists. */
export function findOnnxProto(): ProtoSource | undefined {
  const fromEnv = process.env.ONNX_PROTO;
  if (fromEnv) return fs.existsSync(fromEnv) ? { file: fromEnv, label: fromEnv } : undefined;
  const file = path.join(DEBIAN_ONNX, 'onnx.proto');
  if (!fs.existsSync(file)) return undefined;
  const version = /version\s*=\s*"([^"]+)"/.exec(fs.readFileSync(path.join(DEBIAN_ONNX, 'version.py'), 'utf8'))?.[1];
  return { file, label: `ONNX ${version ?? '?'} (Debian python3-onnx, ${file})` };
}

/** The generated module's text, formatted as committed. */
export function generateOnnxModule(source: ProtoSource): string {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'onnx-generate-'));
  try {
    fs.copyFileSync(source.file, path.join(work, 'onnx.proto'));
    const template = {
      version: 'v2',
      plugins: [{ local: path.join(ROOT, 'node_modules/.bin/protoc-gen-es'), out: 'out', opt: ['target=ts', 'import_extension=js'] }],
    };
    execFileSync(path.join(ROOT, 'node_modules/.bin/buf'), ['generate', '--template', JSON.stringify(template), '.'], {
      cwd: work,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const header = [
      '// ONNX protobuf messages for @bufbuild/protobuf. Generated: do not edit.',
      `// Source: onnx.proto of ${source.label}.`,
      '// Regenerate with `npm run onnx:generate` (tools/onnx-generate.ts); tests/onnx/generate.test.ts checks it is current.',
      '',
    ].join('\n');
    const generated = header + fs.readFileSync(path.join(work, 'out/onnx_pb.ts'), 'utf8');
    return execFileSync(
      path.join(ROOT, 'node_modules/.bin/biome'),
      ['check', '--write', `--stdin-file-path=${path.relative(ROOT, GENERATED_FILE)}`],
      { cwd: ROOT, input: generated, encoding: 'utf8', maxBuffer: 64 << 20 },
    );
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const source = findOnnxProto();
  if (!source) {
    console.error(`no onnx.proto found: install Debian's python3-onnx (apt-get install python3-onnx) or set ONNX_PROTO`);
    process.exit(2);
  }
  const text = generateOnnxModule(source);
  if (process.argv.includes('--check')) {
    const current = fs.existsSync(GENERATED_FILE) ? fs.readFileSync(GENERATED_FILE, 'utf8') : '';
    if (current !== text) {
      console.error(`${path.relative(ROOT, GENERATED_FILE)} is stale: run npm run onnx:generate`);
      process.exit(1);
    }
    console.log(`${path.relative(ROOT, GENERATED_FILE)} is current`);
  } else {
    fs.mkdirSync(path.dirname(GENERATED_FILE), { recursive: true });
    fs.writeFileSync(GENERATED_FILE, text);
    console.log(`wrote ${path.relative(ROOT, GENERATED_FILE)} from ${source.label}`);
  }
}
