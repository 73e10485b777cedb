/**
 * The CPU features that decide how fast, and how exactly, ONNX Runtime's int8 kernels run here.
 * Read once from /proc/cpuinfo (Linux); elsewhere only the model name and architecture are known
 * and the feature flags are null ("not known"), never guessed.
 */
import fs from 'node:fs';
import os from 'node:os';

export interface CpuFeatures {
  model: string;
  arch: string;
  /** x86: AVX2 (MLAS's u8×s8 kernel with 16-bit saturating pair sums when there is no VNNI). */
  avx2: boolean | null;
  /** x86: AVX-512 Foundation. */
  avx512: boolean | null;
  /** x86: AVX-512 VNNI or AVX-VNNI (int8 dot products accumulated in int32: nothing saturates). */
  vnni: boolean | null;
  /** x86: AMX int8 tiles. */
  amx: boolean | null;
  /** arm64: the SDOT/UDOT dot-product instructions. */
  dotprod: boolean | null;
}

/** Parses the flags of the first processor in a /proc/cpuinfo text. */
export function parseCpuinfo(text: string, arch: string, model: string): CpuFeatures {
  const line = text.split('\n').find((l) => /^(flags|Features)\s*:/.test(l));
  if (!line) return { model, arch, avx2: null, avx512: null, vnni: null, amx: null, dotprod: null };
  const flags = new Set(
    line
      .slice(line.indexOf(':') + 1)
      .trim()
      .split(/\s+/),
  );
  const x86 = arch === 'x64' || arch === 'ia32';
  const onX86 = (v: boolean): boolean | null => (x86 ? v : null);
  return {
    model,
    arch,
    avx2: onX86(flags.has('avx2')),
    avx512: onX86(flags.has('avx512f')),
    vnni: onX86(flags.has('avx512_vnni') || flags.has('avx_vnni')),
    amx: onX86(flags.has('amx_int8')),
    dotprod: arch === 'arm64' ? flags.has('asimddp') : null,
  };
}

let cached: CpuFeatures | undefined;

export function cpuFeatures(): CpuFeatures {
  if (cached) return cached;
  const model = os.cpus()[0]?.model?.trim() || 'unknown';
  let text = '';
  try {
    text = fs.readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    // not Linux: flags stay unknown
  }
  cached = parseCpuinfo(text, process.arch, model);
  return cached;
}

/** One line for logs and benchmark tables, e.g. "AMD EPYC (x64; avx2 avx512 vnni)". */
export function describeCpu(f: CpuFeatures): string {
  const names = (['avx2', 'avx512', 'vnni', 'amx', 'dotprod'] as const).filter((k) => f[k] === true);
  return `${f.model} (${f.arch}; ${names.length ? names.join(' ') : 'no int8 dot-product extensions known'})`;
}
