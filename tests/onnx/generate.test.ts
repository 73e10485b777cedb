import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { findOnnxProto, GENERATED_FILE, generateOnnxModule } from '../../tools/onnx-generate.js';

const source = findOnnxProto();
const committed = fs.readFileSync(GENERATED_FILE, 'utf8');
// The header names the schema it came from; another ONNX release here would rightly generate other code.
const sameSource = source !== undefined && committed.includes(`Source: onnx.proto of ${source.label}.`);
if (!source) console.warn("skipping the generated-code check: no onnx.proto here (Debian's python3-onnx ships one; or set ONNX_PROTO)");
else if (!sameSource) console.warn(`skipping the generated-code check: gen/onnx_pb.ts was not generated from ${source.label}`);

describe('generated ONNX messages', () => {
  it.skipIf(!sameSource)(
    'src/runtime/onnx/gen/onnx_pb.ts is what `npm run onnx:generate` writes from onnx.proto',
    () => {
      expect(generateOnnxModule(source!) === committed, 'gen/onnx_pb.ts is stale: run `npm run onnx:generate`').toBe(true);
    },
    120_000,
  );
});
