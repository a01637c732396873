#!/usr/bin/env bash
# Wall-clock figures on a machine with a GPU, in one go (under 8 minutes on a 16-core
# machine, build included):
#   * the adapters wgpu sees;
#   * the fused lincomb kernel's bandwidth against a plain buffer copy on the first device
#     (chords-wgpu/examples/kernels.rs);
#   * `chords bench --quick --wall`: every sampler's wall time to its output and its wall
#     speed-up over the fastest sequential solve, for (b) one device with a round as one
#     batched forward pass (wgpu-lanes) and (c) one device per core (wgpu-per-core), next
#     to the CPU configurations (cpu-threads, cpu-lanes).
#
# Usage: scripts/gpu-bench.sh [OUT]   (default out/gpu-bench; bench.md, bench.json there)
# Environment: MODELS (emoji,mixture), CORES (4,8), SAMPLES (2), WALL (the configurations),
# CHORDS_BIN and KERNELS_BIN (prebuilt binaries: skip the build), CARGO_TARGET_DIR.
# Without a GPU it runs on lavapipe (apt-get install mesa-vulkan-drivers).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/gpu-bench}"
models="${MODELS:-emoji,mixture}"
cores="${CORES:-4,8}"
samples="${SAMPLES:-2}"
wall="${WALL:-wgpu-lanes,wgpu-per-core,cpu-lanes,cpu-threads}"
started=$(date +%s)
elapsed() { echo "[$(($(date +%s) - started)) s] $*"; }

target="${CARGO_TARGET_DIR:-target}"
if [ -z "${CHORDS_BIN:-}" ] || [ -z "${KERNELS_BIN:-}" ]; then
  elapsed "building the chords binary and the kernels example (release)"
  CARGO_TARGET_DIR="$target" cargo build --release --workspace --bins --examples --quiet
fi
chords="${CHORDS_BIN:-$target/release/chords}"
kernels="${KERNELS_BIN:-$target/release/examples/kernels}"
if [ -e "$out" ]; then
  echo "error: $out exists; give another folder or remove it" >&2
  exit 2
fi
mkdir -p "$out"

elapsed "adapters"
"$chords" adapters | tee "$out/adapters.txt"

elapsed "lincomb against copy, 16 M elements"
"$kernels" 16777216 20 | tee "$out/kernels.txt"

elapsed "bench --quick --wall $wall (models $models, K = $cores, $samples samples)"
"$chords" bench --quick --models "$models" --cores "$cores" --samples "$samples" \
  --wall "$wall" --out "$out/bench" >/dev/null
sed -n '/wall time to the output/,$p' "$out/bench/bench.md"
elapsed "done: $out/bench/bench.md, $out/bench/bench.json"
