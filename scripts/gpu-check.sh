#!/usr/bin/env bash
# The WebGPU checks for a GPU machine without Node.js (the H200 a session may be lent): the WebGPU
# correctness tests, `bench:sizing` (the training rates that size the v2 model's gpu profile), then
# `bench:gpu` at the Qwen2.5-0.5B shape beside PyTorch CUDA and transformers.
# Whatever it writes goes to $OUT (the folder the device tool copies back), default .bench/gpu-check:
#   probe.txt          `search-r3 device --device webgpu`: the adapter, and one product checked; when WebGPU
#                      is not usable, the run stops there (exit 3), so a failed lease costs seconds
#   tests.tap          the TAP of the WebGPU tests
#   sizing.json, .txt  bench:sizing's table, and the GPU_BUDGET.measured entry it prints
#   bench-gpu.json     the bench's table as JSON (written after each phase, so a cut run leaves what it measured)
#   bench-gpu.txt      the bench's printed output, with the GPU kernel profiles of one training step and of decoding
#   matmul-unsafe.json, .txt  our matmul rows at 4096³ and 8192³ again with Dawn's robustness checks off
#                      (index clamps in every shader; no peer): whether turning them off would pay on this GPU
# Prepare here: `npm run build`, fill .gpu-pack/ (docs/gpu.md, "A GPU machine without Node.js"), then
# `bash scripts/gpu-check.sh prepare` checks what the call needs and prints its size, carry and command.
# The steps' limits add up to 545 s, so with start-up the whole stays within the call's 570 s: the device
# probe 20 s (it takes seconds where WebGPU works), the tests GPU_CHECK_TEST_S (50 s), the sizing
# GPU_CHECK_SIZING_S (70 s; no shape starts after BENCH_SIZING_BUDGET_S, 45 s), the bench GPU_CHECK_BENCH_S
# (360 s; its phases start within BENCH_GPU_BUDGET_S, 290 s, and its peer ends within that plus 60 s), the
# matmul rows without robustness checks GPU_CHECK_UNSAFE_S (45 s). A run cut short keeps every file
# written before.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = prepare ]; then
  DIE_PREFIX="gpu-check prepare"
  # shellcheck source=scripts/lease-travel.sh
  source scripts/lease-travel.sh
  for f in dist/bench/gpu.js dist/bench/gpu-sizing.js dist/test/tensor/webgpu dist/src/cli/device.js; do
    [ -e "$f" ] || die "$f is missing: run npm run build"
  done
  [ -f build/Release/search_r3_native.node ] || die "build/Release/ is missing: run npm run build"
  # a symlink (a worktree's) would arrive dangling: the call carries what a path names, not where it points
  [ -L build/Release ] && die "build/Release is a symlink: copy the real folder in its place (cp -rL)"
  [ -f .gpu-pack/prologue.sh ] || die ".gpu-pack/ is missing: bash ../shared/tools/offline-gpu/pack.sh webgpu"
  travel_check gpu-check .gpu-pack dist build/Release || exit 1
  echo -n "carry: "
  carry_json .gpu-pack dist build/Release
  echo "command (timeout_s 570): bash scripts/gpu-check.sh"
  exit 0
fi
OUT=${OUT:-.bench/gpu-check}
mkdir -p "$OUT"
started=$SECONDS

# A worktree's node_modules and build/Release may be symlinks into another checkout that did not travel.
for link in node_modules build/Release; do
  if [ -L "$link" ] && [ ! -e "$link" ]; then
    echo "gpu-check: $link is a dangling symlink here; removing it" >&2
    rm "$link"
  fi
done
[ -f .gpu-pack/prologue.sh ] || { echo "gpu-check: .gpu-pack/ is missing (see docs/gpu.md)" >&2; exit 1; }
[ -f dist/bench/gpu.js ] || { echo "gpu-check: dist/ is missing: run npm run build and send dist/" >&2; exit 1; }
# shellcheck disable=SC1091
source .gpu-pack/prologue.sh
[ -f build/Release/search_r3_native.node ] ||
  echo "gpu-check: build/Release/ did not travel: our CPU column falls back to the TS kernels (0.5b: skipped)"

nvidia-smi || echo "gpu-check: nvidia-smi failed"
echo "== the device (at most 20 s) =="
# where WebGPU finds no adapter or computes wrong, the rest would only fail slowly: stop, keeping the time
{
  # shellcheck source=scripts/nvidia-vulkan.sh
  source scripts/nvidia-vulkan.sh
  timeout -k 5 15 node dist/src/cli/main.js device --device webgpu
} > "$OUT/probe.txt" 2>&1
probe=$?
grep -v '^Warning: max' "$OUT/probe.txt"
if [ "$probe" -ne 0 ]; then
  echo "gpu-check: WebGPU is not usable here (exit $probe, $OUT/probe.txt); nothing else was run"
  exit 3
fi

# The PyTorch oracle of the training-step test and the bench's peer need a python3 that has torch: the
# first python3 on PATH that does, else /usr/bin/python3 (Debian's python3-torch). Both use that one.
python=/usr/bin/python3
for p in $(type -ap python3); do
  if "$p" -c 'import importlib.util as u; exit(u.find_spec("torch") is None)' 2>/dev/null; then
    python=$p
    break
  fi
done
export SEARCH_R3_PYTHON=$python
export BENCH_PYTHON=${BENCH_PYTHON:-$python}
"$BENCH_PYTHON" -c 'import torch, sys; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' ||
  echo "gpu-check: $BENCH_PYTHON does not import torch"
"$BENCH_PYTHON" -c 'import transformers; print("transformers", transformers.__version__)' 2>/dev/null ||
  echo "gpu-check: transformers does not import: the bench's generation peer is a plain PyTorch loop"

echo "== WebGPU tests (at most ${GPU_CHECK_TEST_S:-50} s) =="
# test files named one by one: node --test takes a folder on Node 20 and 26, but not on 22 and 24
# shellcheck disable=SC2046
timeout -k 10 "${GPU_CHECK_TEST_S:-50}" node --test --test-reporter=tap --test-concurrency=4 \
  $(find dist/test/tensor/webgpu -name '*.test.js' | sort) dist/test/model/webgpu-model.test.js \
  dist/test/model/qwen2-train-step.test.js > "$OUT/tests.tap" 2>&1
echo "tests exit $? (124: cut by the timeout)"
grep -E '^# (tests|pass|fail|skipped|cancelled)' "$OUT/tests.tap"
grep -E '^not ok' "$OUT/tests.tap" | head -20

echo "== bench:sizing, the gpu profile's shapes (at most ${GPU_CHECK_SIZING_S:-70} s) =="
BENCH_SIZING_BUDGET_S=${BENCH_SIZING_BUDGET_S:-45} BENCH_OUT="$OUT/sizing.json" \
  timeout -k 10 "${GPU_CHECK_SIZING_S:-70}" node dist/bench/gpu-sizing.js 2>&1 | grep -v '^Warning: max' |
  tee "$OUT/sizing.txt"
echo "sizing exit ${PIPESTATUS[0]} (124: cut by the timeout)"

echo "== bench:gpu, shape ${BENCH_GPU_SHAPE:-0.5b} (at most ${GPU_CHECK_BENCH_S:-360} s) =="
BENCH_GPU_SHAPE=${BENCH_GPU_SHAPE:-0.5b} BENCH_GPU_BUDGET_S=${BENCH_GPU_BUDGET_S:-290} BENCH_OUT="$OUT/bench-gpu.json" \
  timeout -k 10 "${GPU_CHECK_BENCH_S:-360}" node dist/bench/gpu.js 2>&1 | grep -v '^Warning: max' |
  tee "$OUT/bench-gpu.txt"
echo "bench exit ${PIPESTATUS[0]} (124: cut by the timeout)"

echo "== our matmul rows with Dawn's robustness checks off (at most ${GPU_CHECK_UNSAFE_S:-45} s) =="
SEARCH_R3_DAWN_FLAGS=enable-dawn-features=disable_robustness BENCH_GPU_SHAPE=${BENCH_GPU_SHAPE:-0.5b} \
  BENCH_GPU_PARTS=matmul BENCH_GPU_SIZES=${BENCH_GPU_UNSAFE_SIZES:-4096,8192} BENCH_GPU_CPU=0 BENCH_GPU_PEER=0 \
  BENCH_OUT="$OUT/matmul-unsafe.json" timeout -k 5 "${GPU_CHECK_UNSAFE_S:-45}" node dist/bench/gpu.js 2>&1 |
  grep -v '^Warning: max' | tee "$OUT/matmul-unsafe.txt"
echo "unsafe matmul exit ${PIPESTATUS[0]} (124: cut by the timeout); gpu-check took $((SECONDS - started)) s"
