#!/usr/bin/env bash
# The device step of the GPU check: unpacks benchmarks/gpu/pack/bundle.tar.xz (made by pack.sh),
# installs Debian's Vulkan loader, generates the MiniLM-shaped model with the device's torch, and
# runs check.mjs with the packed Node. Writes $OUT/report.json, $OUT/report.md, $OUT/device.log.
#
#   on the device (run tool, carry benchmarks/gpu/pack):  bash benchmarks/gpu/device.sh
#   here, CPU only, nothing installed outside a temp dir:  DEVICE_DRY_RUN=1 bash benchmarks/gpu/device.sh
#
# Knobs (environment): GPU_SECONDS (per measurement, 3), GPU_BUDGET (check.mjs total, 240 s),
# MODEL_TIMEOUT (150 s), GPU_MODEL (an existing model dir: skip generation), GPU_DIR (unpack dir), BUNDLE, PYTHON,
# GPU_CHECK_ARGS (extra check.mjs arguments), OUT (where results go).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DRY=0
if [ "${DEVICE_DRY_RUN:-0}" = 1 ] || ! command -v nvidia-smi >/dev/null 2>&1; then DRY=1; fi
if [ "$DRY" = 1 ]; then
  DEST=${GPU_DIR:-${TMPDIR:-/tmp}/gpu-dry}
  OUT=${OUT:-${TMPDIR:-/tmp}/gpu-dry-out}
else
  DEST=${GPU_DIR:-/tmp/gpu}
  OUT=${OUT:-/tmp/gpu-out}
fi
GPU_SECONDS=${GPU_SECONDS:-3}
GPU_BUDGET=${GPU_BUDGET:-240}
MODEL_TIMEOUT=${MODEL_TIMEOUT:-150}
if [ -z "${BUNDLE:-}" ]; then
  for f in "$HERE/pack/bundle.tar.xz" "$HERE/pack/bundle.tar.gz"; do [ -f "$f" ] && BUNDLE=$f && break; done
fi
mkdir -p "$OUT"
T0=$(date +%s)
STEPS=()

# Unpacks a .deb's files: dpkg -x where there is dpkg, else Python (ar archive holding data.tar.*).
undeb() {
  if command -v dpkg >/dev/null 2>&1 && [ "${UNDEB:-dpkg}" = dpkg ]; then dpkg -x "$1" "$2"; return; fi
  local py
  py=$(command -v python3 || command -v /usr/bin/python3) || { echo "neither dpkg nor python3 to unpack $1"; return 1; }
  "$py" - "$1" "$2" <<'PYEOF'
import io, sys, tarfile
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"!<arch>\n", "not a .deb"
pos = 8
while pos + 60 <= len(data):
    hdr = data[pos:pos + 60]
    name, size = hdr[:16].decode().strip().rstrip("/"), int(hdr[48:58])
    body = data[pos + 60:pos + 60 + size]
    pos += 60 + size + (size & 1)
    if name.startswith("data.tar"):
        with tarfile.open(fileobj=io.BytesIO(body)) as tf:
            tf.extractall(sys.argv[2], **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))
PYEOF
}

step() { STEP_NAME=$1; STEP_T0=$(date +%s.%N); printf '\n=== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
done_step() { STEPS+=("$STEP_NAME $(awk -v a="$STEP_T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }')${1:+ ($1)}"); }

main() {
  echo "device.sh: $( [ "$DRY" = 1 ] && echo 'DRY RUN (CPU, local prefix)' || echo 'device run') on $(hostname), $(nproc) cores, $(uname -m), kernel $(uname -r)"
  [ -n "${BUNDLE:-}" ] && [ -f "$BUNDLE" ] || { echo "no bundle: run bash benchmarks/gpu/pack.sh first (and carry benchmarks/gpu/pack)"; return 2; }
  echo "bundle: $BUNDLE ($(stat -c %s "$BUNDLE") bytes) -> $DEST; results -> $OUT"

  step unpack
  rm -rf "$DEST" && mkdir -p "$DEST"
  case "$BUNDLE" in
    *.xz) tar -C "$DEST" --strip-components=1 -xJf "$BUNDLE" ;;
    *) tar -C "$DEST" --strip-components=1 -xzf "$BUNDLE" ;;
  esac || { echo "unpack failed"; return 2; }
  cat "$DEST/MANIFEST.txt"
  echo "unpacked: $(du -sh "$DEST" | cut -f1)"
  "$DEST/node" --version || { echo "the packed node does not run here"; return 2; }
  done_step

  step vulkan
  if [ "$DRY" = 1 ]; then
    # Not on the device: unpack into a local prefix, never into /.
    mkdir -p "$DEST/sysroot"
    for f in "$DEST"/debs/*.deb; do undeb "$f" "$DEST/sysroot" || echo "unpacking $f failed"; done
    export LD_LIBRARY_PATH="$DEST/sysroot/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "dry run: Vulkan loader unpacked into $DEST/sysroot (LD_LIBRARY_PATH)"
  else
    if ldconfig -p | grep -q 'libvulkan.so.1 '; then echo "a Vulkan loader is already installed:"; fi
    for f in "$DEST"/debs/*.deb; do undeb "$f" / || echo "unpacking $f failed"; done
    ldconfig
  fi
  ldconfig -p | grep -E 'libvulkan\.so|libGLdispatch|libGLX_nvidia|libEGL_nvidia|libnvidia-glcore' | sed 's/^/  /'
  local icds=()
  for d in /etc/vulkan/icd.d /usr/share/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
    for j in "$d"/*.json; do [ -f "$j" ] && icds+=("$j"); done
  done
  local nv=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  echo "Vulkan ICD files in the loader's default folders: ${icds[*]:-none}; $nv: $([ -f "$nv" ] && echo present || echo absent)"
  if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && [ ${#icds[@]} = 0 ] && [ -f "$nv" ]; then
    export VK_DRIVER_FILES=$nv
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    echo "export VK_DRIVER_FILES=$VK_DRIVER_FILES __EGL_VENDOR_LIBRARY_FILENAMES=$__EGL_VENDOR_LIBRARY_FILENAMES"
  fi
  # The NVIDIA ICD library (libGLX_nvidia.so.0) is loaded by name: make sure the driver's folder is searched.
  if [ -d /usr/local/nvidia/lib64 ] && ! ldconfig -p | grep -q 'libGLX_nvidia.so.0 '; then
    export LD_LIBRARY_PATH="/usr/local/nvidia/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "export LD_LIBRARY_PATH=$LD_LIBRARY_PATH (libGLX_nvidia.so.0 is not in the ld cache)"
  fi
  for j in ${VK_DRIVER_FILES:-${VK_ICD_FILENAMES:-}} "${icds[@]}"; do
    j=${j//:/ }
    for jj in $j; do
      [ -f "$jj" ] || continue
      echo "--- $jj"; cat "$jj"; echo
      lib=$(sed -n 's/.*"library_path"[^"]*"\([^"]*\)".*/\1/p' "$jj" | head -1)
      [ -n "$lib" ] || continue
      if [ "${lib#/}" = "$lib" ]; then
        local name=$lib d
        lib=
        for d in ${LD_LIBRARY_PATH//:/ }; do [ -f "$d/$name" ] && lib=$d/$name && break; done
        [ -n "$lib" ] || lib=$(ldconfig -p | awk -v n="$name" '$1 == n { print $NF; exit }')
      fi
      if [ -n "$lib" ] && [ -f "$lib" ]; then
        echo "ICD library $lib: $(ldd "$lib" 2>&1 | grep -c 'not found') missing dependencies"; ldd "$lib" 2>&1 | grep 'not found'
      else
        echo "ICD library for $jj not found"
      fi
    done
  done
  done_step

  step gpu
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L
    nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,compute_cap --format=csv
  else
    echo "no nvidia-smi"
  fi
  PY=
  for p in ${PYTHON:-} python3 /usr/bin/python3 python; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch' >/dev/null 2>&1; then PY=$(command -v "$p"); break; fi
  done
  if [ -n "$PY" ]; then
    # What a CUDA execution provider would link against, if one were carried (see README).
    "$PY" - <<'PYEOF' 2>&1 | sed 's/^/  /'
import glob, os, re, sys
import torch
print(f"python {sys.version.split()[0]} ({sys.executable}); torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, GPU {torch.cuda.is_available()}")
try:
    import onnxruntime as ort
    print(f"python onnxruntime {ort.__version__}: {ort.get_available_providers()}")
except Exception as e:
    print(f"python onnxruntime: {e}")
try:
    import nvidia
    roots = list(nvidia.__path__)
except Exception:
    roots = []
want = re.compile(r"lib(cudart|cublas|cublasLt|cudnn|cufft|curand|nvrtc)\.so\.\d+$")
libs = sorted({os.path.basename(p) for r in roots for p in glob.glob(os.path.join(r, "**", "lib*.so*"), recursive=True) if want.search(os.path.basename(p))})
print("CUDA libraries in the python env:", ", ".join(libs) or "none", f"(under {', '.join(roots) or 'no nvidia package'})")
PYEOF
  fi
  done_step

  step model
  local model=${GPU_MODEL:-}
  if [ -z "$model" ]; then
    local py=$PY
    if [ -z "$py" ]; then
      echo "no python with torch found (tried ${PYTHON:-} python3 /usr/bin/python3 python)"
    else
      echo "python with torch: $py"
      # Run from the bundle: its tools/ has no ../shared beside it, so the generator makes its own vocabulary.
      (cd "$DEST" && PYTHONUNBUFFERED=1 timeout "$MODEL_TIMEOUT" nice -n 10 "$py" make_model.py "$DEST/model" --tools "$DEST/tools") \
        && [ -f "$DEST/model/onnx/model.onnx" ] && model=$DEST/model
    fi
    if [ -z "$model" ]; then
      model=$(cd "$HERE/../.." && pwd)/tests/fixtures/models/tiny-bert
      echo "WARNING: model generation failed: falling back to the repository's tiny-bert ($model); the numbers are not MiniLM's"
    fi
  fi
  echo "model: $model"
  done_step "$(basename "$model")"

  step check
  # shellcheck disable=SC2086
  timeout $((GPU_BUDGET + 60)) "$DEST/node" "$DEST/check.mjs" --model "$model" --out "$OUT/report.json" \
    --seconds "$GPU_SECONDS" --budget "$GPU_BUDGET" ${GPU_CHECK_ARGS:-}
  local rc=$?
  done_step "exit $rc"

  echo
  echo "=== timings"
  printf '  %s\n' "${STEPS[@]}"
  echo "  total $(($(date +%s) - T0)) s"
  ls -la "$OUT"
  return $rc
}

main 2>&1 | tee "$OUT/device.log"
exit "${PIPESTATUS[0]}"
