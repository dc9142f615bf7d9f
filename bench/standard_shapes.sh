#!/usr/bin/env bash
# rnn-wgpu at the standard shapes of torch_rnn_bench.py on both backends, one JSON line each.
# usage: bench/standard_shapes.sh [CPU_RUNS] [GPU_RUNS]
# On lavapipe (software Vulkan) the GPU runs take minutes: GPU_RUNS defaults to 1 after 1 warm-up.
set -euo pipefail
cd "$(dirname "$0")/.."
cpu_runs=${1:-10}; gpu_runs=${2:-1}
cargo build --release --quiet
for s in rnn,256,256,1,32,50 lstm,256,256,1,32,50 gru,256,256,1,32,50 lstm,128,128,1,16,100 \
         lstm,512,512,1,64,25 lstm,1024,1024,1,32,25 lstm,256,256,2,32,50; do
  IFS=, read -r cell i h l b t <<<"$s"
  args=(--cell "$cell" --input "$i" --hidden "$h" --layers "$l" --batch "$b" --seq "$t" --json)
  ./target/release/rnn-wgpu bench "${args[@]}" --backend cpu --runs "$cpu_runs"
  ./target/release/rnn-wgpu bench "${args[@]}" --backend gpu --runs "$gpu_runs" --warmup 1
done
