#!/usr/bin/env bash
# Media benchmark (issue 4, point 9): N concurrent answered calls on 127.0.0.1, each playing a
# prompt with barge-in and collecting DTMF; reports CPU, memory per call and RTP send jitter.
#
#   bench/media/run.sh                       # N = 100, 500, 1000; 10 s each
#   bench/media/run.sh --calls 200 --seconds 5
#
# Bounded: each stage runs 2 s of ramp plus --seconds (at most 120), and the whole run is killed
# after 10 minutes. Loopback only; RTP ports 40000-43999 unless --ports is given.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -p media --example media_bench
# Each call holds two UDP sockets.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec timeout 600 "$target/release/examples/media_bench" "$@"
