#!/usr/bin/env bash
# A longer run of the fuzz test in tests/fuzz.rs: N seeded mutants (default 20000) of every
# file kind through every reader, each in a child process under a memory and a time limit.
#   bench/fuzz.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_MUTANTS="${1:-20000}" cargo test --release --test fuzz -- --nocapture
