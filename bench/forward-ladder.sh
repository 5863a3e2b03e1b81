#!/usr/bin/env bash
# First load figure: a ladder of call rates, SIPp uac → uas directly and uac → stirgate → uas,
# on loopback only. Each step runs STEP_S seconds of calls and ends by itself; the ladder stops
# at the first step with a failed call. Prints the highest zero-failure rate of each and their
# ratio.
#
# usage: bench/forward-ladder.sh [STEP_S]      (default 4 seconds per step)
set -euo pipefail
cd "$(dirname "$0")/.."
STEP_S=${1:-4}
RATES=(250 500 1000 2000 3000 4000 5000 6000 8000 10000 12000 16000)

command -v sipp >/dev/null || { echo "sipp missing: apt-get install sip-tester" >&2; exit 2; }
cargo build --release -q -p stirgate
BIN=target/release/stirgate
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

UAS_PORT=$(free_port); SG_PORT=$(free_port); METRICS_PORT=$(free_port)
(cd "$WORK" && exec sipp -sn uas -i 127.0.0.1 -p "$UAS_PORT" -nostdin >/dev/null 2>&1) &
PIDS+=($!)
cat > "$WORK/stirgate.toml" <<TOML
[sip]
listen = ["udp:127.0.0.1:$SG_PORT"]
[forward]
target = "sip:uas@127.0.0.1:$UAS_PORT"
[metrics]
listen = "127.0.0.1:$METRICS_PORT"
[cdr]
path = "$WORK/cdr.jsonl"
[routes]
# This ladder measures the forwarding path: unsigned SIPp calls are forwarded, not challenged.
missing = "forward"
[voicemail]
dir = "$WORK/voicemail"
[lists]
path = "$WORK/lists.sqlite3"
[status]
listen = ""
TOML
STIRGATE_LOG=warn "$BIN" run --config "$WORK/stirgate.toml" 2>"$WORK/stirgate.log" &
SG_PID=$!
PIDS+=($SG_PID)
sleep 1

# ladder TARGET → prints the highest rate with zero failed calls
ladder() {
    local target=$1 best=0 r
    for r in "${RATES[@]}"; do
        local calls=$((r * STEP_S)) port
        port=$(free_port)
        if (cd "$WORK" && timeout $((STEP_S + 25)) sipp -sn uac "$target" -i 127.0.0.1 -p "$port" \
                -r "$r" -m "$calls" -nostdin -timeout $((STEP_S + 20))s -recv_timeout 5000 \
                -max_socket 100000 >/dev/null 2>&1); then
            best=$r
            echo "  $target  $r calls/s  ok" >&2
        else
            echo "  $target  $r calls/s  failed calls" >&2
            break
        fi
    done
    echo "$best"
}

echo "ladder: ${RATES[*]} calls/s, ${STEP_S}s per step" >&2
DIRECT=$(ladder "127.0.0.1:$UAS_PORT")
VIA=$(ladder "127.0.0.1:$SG_PORT")
CPU=$(ps -o cputime= -p "$SG_PID" | tr -d ' ')
RSS=$(ps -o rss= -p "$SG_PID" | tr -d ' ')
echo
echo "SIPp uac → uas directly:            $DIRECT calls/s (highest rate with zero failed calls)"
echo "SIPp uac → stirgate → uas (forward): $VIA calls/s"
if [ "$DIRECT" -gt 0 ]; then
    awk -v a="$VIA" -v b="$DIRECT" 'BEGIN { printf "ratio stirgate/direct:               %.2f\n", a / b }'
fi
echo "stirgate CPU time over the run: $CPU, RSS at the end: ${RSS} KiB"
