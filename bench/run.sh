#!/usr/bin/env bash
# stirgate load kit (issue 7): one command, loopback only, bounded in time.
#
#   bench/run.sh             # full run, about 14 minutes on 2 cores
#   QUICK=1 bench/run.sh     # about 3-4 minutes: shorter steps, coarser ladder, no profile
#
# Prints one table and writes bench/RESULTS.md (generated: never edit it by hand). Rows: SIPp
# straight to SIPp (the harness's ceiling), SIPp -> stirgate (verify + forward) -> SIPp, and
# SIPp -> Kamailio (secsipid + t_relay) -> SIPp, every INVITE with a fresh Identity header made
# by `stirgate sign`. See bench/lib/kit.py for what is measured and how.
#
# Knobs (environment): QUICK=1, STEP_S (seconds per rate step), HOLD_MS (call hold time),
# PROFILE=0|1 (perf record at 70 % of stirgate's maximum), MEDIA=0|1 (bench/media/run.sh), LADDER=a,b,c
# (rates to try instead of the built-in ladder), IDLE_S (seconds an idle stirgate is watched),
# STIRGATE_BIN (use this binary instead of building), KEEP=1 (keep the work directory),
# RESULTS (where to write the report). Needs: sipp, kamailio with secsipid, python3, openssl,
# perf (for the profile), tcpdump (for the added latency read on the wire); everything listens on 127.0.0.1 only and every step ends by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v sipp >/dev/null || missing+=("sipp (apt-get install sip-tester)")
command -v python3 >/dev/null || missing+=("python3")
command -v openssl >/dev/null || missing+=("openssl")
[ -x "${KAMAILIO:-/usr/sbin/kamailio}" ] || missing+=("kamailio (apt-get install kamailio kamailio-secsipid-modules)")
compgen -G "/usr/lib/*/kamailio/modules/secsipid.so" >/dev/null \
    || missing+=("Kamailio's secsipid module (apt-get install kamailio-secsipid-modules)")
if [ ${#missing[@]} -gt 0 ]; then
    printf 'bench/run.sh: missing %s\n' "${missing[@]}" >&2
    exit 2
fi
if [ "${PROFILE:-}" != 0 ] && [ "${QUICK:-}" != 1 ] && ! command -v perf >/dev/null; then
    echo "bench/run.sh: perf not found (apt-get install linux-perf); running without the profile" >&2
    export PROFILE=0
fi

command -v tcpdump >/dev/null \
    || echo "bench/run.sh: tcpdump not found (apt-get install tcpdump); added latency from SIPp's own times only" >&2

if [ -n "${STIRGATE_BIN:-}" ]; then
    export BENCH_BIN_GIVEN=1   # RESULTS.md then says the binary may not match the tree
else
    cargo build --release -q -p stirgate
    STIRGATE_BIN="${CARGO_TARGET_DIR:-target}/release/stirgate"
fi
STIRGATE_BIN=$(realpath "$STIRGATE_BIN")
export STIRGATE_BIN
# Many sockets and files at 10k+ calls/s; the whole kit is bounded by a hard timeout.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export PYTHONDONTWRITEBYTECODE=1
exec timeout --signal=TERM --kill-after=30 2400 python3 bench/lib/kit.py
