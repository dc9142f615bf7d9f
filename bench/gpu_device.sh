#!/usr/bin/env bash
# On a lent GPU machine (no Rust, no Vulkan loader): correctness, then rnn-wgpu's GPU path against
# PyTorch cuDNN at the standard shapes, in one command. Prepare here first:
#   cargo build --release && cargo test --release --no-run
#   mkdir -p .devbin && cp target/release/rnn-wgpu .devbin/ (+ test binaries as .devbin/test_NAME)
#   cp bench/torch_rnn_bench.py .devbin/; strip .devbin/*; fetch the loader .debs into .gl/ (libvulkan1 and
#   libglvnd0 libegl1 libgl1 libglx0 libopengl0 libgles2: NVIDIA's Vulkan driver needs glvnd)
# and carry .devbin and .gl. Full log in $OUT/log; JSON lines in $OUT/bench.jsonl.
# usage: bench/gpu_device.sh [RUNS] [SHAPE ...]   (SHAPE: cell,I,H,L,B,T)
# ONLY=f16 runs just the checks and the f16-weights forward beside f32 at every shape.
# PROBES=1 adds shapes that split fixed, per-step and projection costs apart, both forward
# variants, and the latency of one streaming step.
set -uo pipefail
out=${OUT:-/tmp/out}; mkdir -p "$out"
runs=${1:-20}; shift || true
shapes=("$@")
[ ${#shapes[@]} -eq 0 ] && shapes=(rnn,256,256,1,32,50 lstm,256,256,1,32,50 gru,256,256,1,32,50
  lstm,128,128,1,16,100 lstm,512,512,1,64,25 lstm,1024,1024,1,32,25 lstm,256,256,2,32,50)
exec > >(tee "$out/log") 2>&1
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
if ! .devbin/rnn-wgpu info 2>/dev/null | grep -i nvidia >/dev/null; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
.devbin/rnn-wgpu info | grep -i nvidia >/dev/null || { ls /usr/local/nvidia/share/vulkan/icd.d/ /etc/vulkan/icd.d/ 2>&1
  VK_LOADER_DEBUG=error,warn .devbin/rnn-wgpu info 2>&1 | head -20; exit 1; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv
.devbin/rnn-wgpu info
export RNN_WGPU_REQUIRE_GPU=1
# The test binaries find their data through the path they were built in.
here=$(pwd); mkdir -p /work; [ -e /work/main ] || ln -s "$here" /work/main
echo "== parity on the GPU"
.devbin/rnn-wgpu parity --backend gpu tests/data/parity/*.safetensors tests/data/parity/shapes/*.safetensors | grep -c PASS
.devbin/rnn-wgpu parity --backend gpu tests/data/parity/*.safetensors tests/data/parity/shapes/*.safetensors | grep -v PASS
for t in .devbin/test_*; do echo "== $t"; "$t" -q 2>&1 | grep -E "test result|FAILED|panicked"; done
if [ "${ONLY:-}" = f16 ]; then
  echo "== f16 beside f32 (forward)"
  for s in "${shapes[@]}"; do
    IFS=, read -r cell i h l b t <<<"$s"
    .devbin/rnn-wgpu bench --f16 --cell "$cell" --input "$i" --hidden "$h" --layers "$l" --batch "$b" \
      --seq "$t" --runs "$runs" --warmup 5 --json | tee -a "$out/f16.jsonl"
  done
  exit 0
fi
echo "== bench"
# A few seconds of work first, so that the first shape does not run on idle clocks.
python3 -c 'import torch, time; a = torch.randn(4096, 4096, device="cuda"); t = time.time()
while time.time() - t < 3: a @ a
torch.cuda.synchronize()'
for s in "${shapes[@]}"; do
  IFS=, read -r cell i h l b t <<<"$s"
  args=(--cell "$cell" --input "$i" --hidden "$h" --layers "$l" --batch "$b" --seq "$t" --json)
  for v in persistent per-step; do
    RNN_WGPU_FORWARD=$v .devbin/rnn-wgpu bench "${args[@]}" --backend gpu --runs "$runs" --warmup 5 |
      sed "s/^{/{\"variant\":\"$v\",/" | tee -a "$out/bench.jsonl"
  done
  python3 .devbin/torch_rnn_bench.py --device cuda --runs "$runs" --shape "$s" | tee -a "$out/bench.jsonl"
  # cuDNN runs its RNN products in TF32 by default; the same with TF32 off is full FP32, as ours.
  python3 -c 'import runpy, sys, torch; torch.backends.cudnn.allow_tf32 = False
sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name="__main__")' \
    .devbin/torch_rnn_bench.py --device cuda --runs "$runs" --shape "$s" |
    sed 's/"peer": "pytorch/"peer": "pytorch-fp32/' | tee -a "$out/bench.jsonl"
done
[ "${PROBES:-0}" = 1 ] || exit 0
echo "== probes"
for s in rnn,8,8,1,1,1 rnn,8,8,1,1,100 rnn,256,256,1,32,1 lstm,256,256,1,1,100 lstm,8,1024,1,32,25 \
         lstm,8,1024,1,32,1; do
  IFS=, read -r cell i h l b t <<<"$s"
  args=(--cell "$cell" --input "$i" --hidden "$h" --layers "$l" --batch "$b" --seq "$t" --json)
  for v in persistent per-step; do
    RNN_WGPU_FORWARD=$v .devbin/rnn-wgpu bench "${args[@]}" --backend gpu --runs "$runs" --warmup 5 |
      sed "s/^{/{\"variant\":\"$v\",/" | tee -a "$out/probes.jsonl"
  done
done
echo "== streaming step latency"
for b in 1 32; do
  for backend in gpu cpu; do
    .devbin/rnn-wgpu bench --cell lstm --input 256 --hidden 256 --batch $b --stream --backend $backend \
      --runs 200 --warmup 20 --json | tee -a "$out/probes.jsonl"
  done
done
