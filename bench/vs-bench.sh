#!/usr/bin/env bash
# REST verification service throughput (issue 17): POST /stir/v1/verification over keep-alive
# connections, cached certificate, a fresh PASSporT per request, against the raw ring P-256
# verify rate of one core measured in the same run. Loopback only; prints one table.
#
#   bench/vs-bench.sh [--seconds 10] [--connections 32] [--passports 100000]
#
# Builds stirgate and the load generator (crates/stirgate/examples/vs_bench.rs) in release mode.
# The load generator runs on one tokio worker beside stirgate; "per core" divides the completed
# verifications by the CPU time stirgate itself used (/proc), so the generator's share of the
# machine does not count against it. On a shared machine the numbers move from run to run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p stirgate --bin stirgate --example vs_bench
target="$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)"
"$target/examples/vs_bench" --stirgate "$target/stirgate" "$@"
