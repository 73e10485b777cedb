#!/usr/bin/env bash
# int8 exactness differs by CPU (src/runtime/onnx/int8-kernel.ts): runs the int8 tests again on an
# emulated AVX2-only x86 CPU (AMD EPYC Rome: AVX2, no AVX-512, no VNNI), so a developer or CI on a
# VNNI machine sees what an AVX2 user sees. qemu-user's TCG runs MLAS's AVX2 kernels for real;
# speed under emulation means nothing, only results are checked. Needs qemu-user (Debian package).
set -euo pipefail
cd "$(dirname "$0")/.."
files=(tests/onnx/quantize.test.ts)
if [[ "$(uname -m)" != x86_64 ]]; then
  echo "int8 AVX2 run skipped: the host is $(uname -m); it emulates an x86-64 CPU model only on x86-64 hosts"
  exit 0
fi
if ! command -v qemu-x86_64 >/dev/null 2>&1; then
  echo "int8 AVX2 run SKIPPED: qemu-x86_64 is not installed (apt-get install qemu-user); the int8 tests ran on this CPU only"
  exit 0
fi
echo "int8 tests on an emulated AVX2-only CPU (qemu-x86_64 -cpu EPYC-Rome): ${files[*]}"
# Threads, not forks: a forked child would run natively, outside the emulator.
QEMU_CPU=EPYC-Rome qemu-x86_64 "$(command -v node)" node_modules/vitest/vitest.mjs run --pool=threads --testTimeout=600000 --hookTimeout=600000 "${files[@]}" 2> >(grep -v "TCG doesn't support" >&2)
