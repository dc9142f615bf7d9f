#!/usr/bin/env bash
# rnn-wgpu's CPU path beside PyTorch's CPU RNNs, same shapes, same machine, one run, interleaved
# ROUNDS times so that a noisy neighbour hits both alike. Needs python3 with torch.
# usage: bench/compare_cpu.sh [ROUNDS] [shape ...]   (shape: cell,I,H,L,B,T)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; shift || true
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(rnn,256,256,1,32,50 lstm,256,256,1,32,50 gru,256,256,1,32,50)
cargo build --release --quiet
for round in $(seq "$rounds"); do
  for s in "${shapes[@]}"; do
    IFS=, read -r cell i h l b t <<<"$s"
    ./target/release/rnn-wgpu bench --cell "$cell" --input "$i" --hidden "$h" --layers "$l" --batch "$b" --seq "$t" --runs 20 --json
    python3 bench/torch_rnn_bench.py --runs 20 --shape "$s"
  done
done
