#!/usr/bin/env bash
# Packs what the GPU device check needs, linux-x64 only, into benchmarks/gpu/pack/bundle.tar.xz:
# this machine's Node binary, the compiled runtime (dist/runtime, dist/pooling), a minimal
# node_modules (onnxruntime-node's linux-x64 binding and library, onnxruntime-common, the
# tokenizers linux-x64 binding), Debian's Vulkan loader .debs, the model generator and check.mjs.
# Before compressing, it runs check.mjs from the staged bundle with the staged Node (CPU, tiny
# model) so that a missing file fails here, not on the device.
#
#   bash benchmarks/gpu/pack.sh
#
# Knobs (environment): COMPRESS=xz|gzip (xz: ~33 MiB in ~90 s on 2 cores at XZ_LEVEL=6, 9e saves
# only 0.6 MiB for twice the time; gzip -9: ~50 MiB in ~30 s, too big beside the ~27 MiB working
# tree), XZ_LEVEL, NODE_BIN (default: the node on PATH), DEBS_DIR (.debs from there, not apt-get).
#
# The device run then carries benchmarks/gpu/pack (see benchmarks/gpu/README.md).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PACK="$HERE/pack"
COMPRESS=${COMPRESS:-xz}
LIMIT_MIB=${LIMIT_MIB:-60}
TRAVEL_MIB=64
NODE_BIN=${NODE_BIN:-$(command -v node)}
DEBS="libvulkan1 libglvnd0 libegl1 libgl1 libglx0 libgles2 libopengl0"
T0=$(date +%s)

say() { printf '[pack] %s\n' "$*"; }
die() { printf '[pack] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(uname -m)" = x86_64 ] || die "this packs this machine's binaries, which must be x86-64 (the device's processor); uname -m says $(uname -m)"
"$NODE_BIN" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || die "$NODE_BIN is not Node >= 20"

cd "$ROOT"
say "npm run build"
nice -n 19 npm run build --silent

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/gpu-stage.XXXXXX")
SMOKE_OUT=$(mktemp -d "${TMPDIR:-/tmp}/gpu-smoke.XXXXXX")
trap 'rm -rf "$STAGE" "$SMOKE_OUT"' EXIT
B="$STAGE/gpu"
mkdir -p "$B"

say "staging in $B"
cp "$NODE_BIN" "$B/node"
# Debian/NodeSource ship node with debug info: stripping saves ~13 MB (~2 MB compressed).
if command -v strip >/dev/null 2>&1; then strip "$B/node"; else say "no strip: node left as is"; fi
printf '{ "name": "gpu-check-bundle", "private": true, "type": "module" }\n' >"$B/package.json"

# The compiled runtime: the engine and what it imports (source maps left out).
mkdir -p "$B/dist"
for d in runtime pooling; do
  [ -d "dist/$d" ] || die "dist/$d is missing after the build"
  (cd dist && find "$d" -name '*.js' -print0 | xargs -0 -I{} install -D -m 0644 {} "$B/dist/{}")
done
# Every relative import of the staged runtime must resolve inside the bundle.
"$NODE_BIN" - "$B/dist" <<'EOF'
const fs = require('node:fs'); const path = require('node:path');
const root = process.argv[2]; const bad = [];
const walk = (d) => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]);
for (const f of walk(root).filter((f) => f.endsWith('.js'))) {
  const src = fs.readFileSync(f, 'utf8');
  for (const m of src.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
    const spec = m[1];
    if (spec.startsWith('.')) { if (!fs.existsSync(path.resolve(path.dirname(f), spec))) bad.push(`${path.relative(root, f)} imports ${spec} (not packed)`); }
    else if (!spec.startsWith('node:') && !['onnxruntime-node', 'tokenizers', 'tsx/esm/api'].includes(spec)) bad.push(`${path.relative(root, f)} imports package ${spec} (not packed)`);
  }
}
if (bad.length) { console.error(bad.join('\n')); process.exit(1); }
EOF

# node_modules: linux-x64 pieces only.
NM="$B/node_modules"
ORT=node_modules/onnxruntime-node
mkdir -p "$NM/onnxruntime-node/dist" "$NM/onnxruntime-node/bin/napi-v6/linux/x64"
cp "$ORT/package.json" "$NM/onnxruntime-node/"
(cd "$ORT" && find dist \( -name '*.js' -o -name package.json \) -print0 | xargs -0 -I{} install -D -m 0644 {} "$NM/onnxruntime-node/{}")
cp "$ORT"/bin/napi-v6/linux/x64/* "$NM/onnxruntime-node/bin/napi-v6/linux/x64/"
mkdir -p "$NM/onnxruntime-common"
cp node_modules/onnxruntime-common/package.json "$NM/onnxruntime-common/"
(cd node_modules/onnxruntime-common && find dist \( -name '*.js' -o -name package.json \) -print0 | xargs -0 -I{} install -D -m 0644 {} "$NM/onnxruntime-common/{}")
mkdir -p "$NM/tokenizers"
cp node_modules/tokenizers/{package.json,index.js,tokenizers.linux-x64-gnu.node} "$NM/tokenizers/"

# Debian's Vulkan loader (and the GL vendor-neutral dispatch that NVIDIA's Vulkan ICD library
# links against), as .debs: device.sh unpacks them.
mkdir -p "$B/debs"
if [ -n "${DEBS_DIR:-}" ]; then
  cp "$DEBS_DIR"/*.deb "$B/debs/"
else
  # apt-get download wants a writable current directory and, as root, warns about _apt.
  if ! (cd "$B/debs" && apt-get download $DEBS >/dev/null 2>"$STAGE/apt.err"); then
    say "apt-get download failed ($(tail -1 "$STAGE/apt.err")); running apt-get update once"
    apt-get update -qq >/dev/null
    (cd "$B/debs" && apt-get download $DEBS >/dev/null) || die "apt-get download $DEBS failed"
  fi
fi
ls "$B"/debs/libvulkan1_*.deb >/dev/null 2>&1 || die "no libvulkan1 .deb in the bundle"

# The model generator (unchanged), its wrapper and the check. (No model: the device generates
# one; its fallback, tiny-bert, travels with the working tree anyway.)
mkdir -p "$B/tools" "$B/training"
cp tools/make_test_models.py "$B/tools/"
cp training/model.py "$B/training/" # the BERT definition the generator imports (../training beside tools/)
cp "$HERE/make_model.py" "$HERE/check.mjs" "$B/"
{
  echo "packed: $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')"
  echo "node: $("$NODE_BIN" --version) ($NODE_BIN)"
  echo "onnxruntime-node: $(node -p "require('./$ORT/package.json').version")"
  echo "tokenizers: $(node -p "require('./node_modules/tokenizers/package.json').version")"
  echo "debs: $(cd "$B/debs" && echo *.deb)"
} >"$B/MANIFEST.txt"

# Smoke run from the staged bundle, with nothing of the repository on the module path.
say "smoke run of the staged bundle (CPU, tiny-bert)"
(cd "$STAGE" && env -u NODE_PATH -u NODE_OPTIONS "$B/node" "$B/check.mjs" --model "$ROOT/tests/fixtures/models/tiny-bert" \
  --seconds 0.2 --warmup 1 --budget 120 --quiet --out "$SMOKE_OUT/report.json" >"$SMOKE_OUT/smoke.log" 2>&1) || {
  cat "$SMOKE_OUT/smoke.log" >&2
  die "the staged bundle does not run"
}
"$B/node" -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const eng = r.config.engine;
if (!eng.startsWith(process.argv[2])) { console.error(`smoke run used an engine outside the bundle: ${eng}`); process.exit(1); }
if (!r.providers.cpu.ok || !r.engine.cpu?.byBatch) { console.error("smoke run: cpu or engine failed"); process.exit(1); }
' "$SMOKE_OUT/report.json" "$B/" || die "smoke run report is wrong"
grep -E '^\| (raw|engine)' "$SMOKE_OUT/report.md" | sed 's/^/[pack]   /'

UNPACKED=$(du -sb "$B" | cut -f1)
mkdir -p "$PACK"
rm -f "$PACK"/bundle.tar.*
case "$COMPRESS" in
  # The x86 branch filter first: most of the bundle is x86-64 machine code (~1 MB smaller).
  xz) OUTF="$PACK/bundle.tar.xz"; COMP=(xz -T2 --x86 "--lzma2=preset=${XZ_LEVEL:-6}") ;;
  gzip) OUTF="$PACK/bundle.tar.gz"; COMP=(gzip -9) ;;
  *) die "COMPRESS must be xz or gzip" ;;
esac
say "compressing with ${COMP[*]} (nice 19)"
C0=$(date +%s)
tar -C "$STAGE" -cf - gpu | nice -n 19 "${COMP[@]}" >"$OUTF.tmp"
mv "$OUTF.tmp" "$OUTF"
C1=$(date +%s)
SIZE=$(stat -c %s "$OUTF")
rm -rf "$STAGE"

# What travels to the device: the working tree (tracked and untracked-not-ignored files) plus the bundle.
TREE=$(git ls-files -co --exclude-standard -z | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
say "bundle $OUTF: $(mib "$SIZE") (unpacked $(mib "$UNPACKED"), compressed in $((C1 - C0)) s; total $(($(date +%s) - T0)) s)"
say "working tree that travels with it: $(mib "$TREE"); together $(mib $((TREE + SIZE))) of the ${TRAVEL_MIB} MiB limit"
[ "$SIZE" -le $((LIMIT_MIB * 1048576)) ] || die "bundle is over ${LIMIT_MIB} MiB"
[ $((TREE + SIZE)) -le $((TRAVEL_MIB * 1048576)) ] || die "working tree + bundle is over ${TRAVEL_MIB} MiB: ignore or remove large untracked files"
