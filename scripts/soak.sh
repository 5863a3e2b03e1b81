#!/usr/bin/env bash
# Soak test (issue 8 item 5): stirgate under a steady mix of every route for SOAK_S seconds, on
# loopback only, bounded in time; watches its memory, file descriptors and RTP ports.
#
#   scripts/soak.sh                      # 10 minutes at RATE (see below)
#   SOAK_S=60 RATE=4 scripts/soak.sh     # a one-minute smoke
#
# The mix (shares of RATE, calls per second; SIPp scenarios of crates/stirgate/tests/scenarios,
# the unsigned ones rewritten on the fly to take the caller's number from an injection file):
#   30 % signed, attest A  -> forwarded to a SIPp callee           (uac_identity.xml)
#   20 % signed, attest B  -> forwarded                            (uac_identity.xml)
#   10 % signed, attest C  -> voicemail, ~7 s of speech recorded   (uac_voicemail_signed.xml)
#   15 % unsigned          -> CAPTCHA passed, bridged, fast-passed (uac_captcha_pass.xml)
#   15 % unsigned          -> CAPTCHA failed, polite BYE           (uac_captcha_fail.xml)
#   10 % blocklisted       -> 603                                  (uac_603.xml)
# Every signed call has its own PASSporT from `stirgate sign` (x5u served by a local
# `python3 -m http.server`, test PKI of certs/), every unsigned caller its own number (a CAPTCHA
# pass puts it on the fast-pass list, so numbers are never reused).
#
# RATE: total calls per second. Without it: MAX_RATE / 2 when MAX_RATE is given, else a quick
# measurement first: 20-second steps of the same mix at 2, 4, 8, 16, 32 calls/s; MAX_RATE is the
# highest step with no failed call, and the soak runs at half of it.
#
# Sampled at start (stirgate ready, no calls), every minute, at the end of the load and after
# the last call ended: RSS (VmRSS), open fds (/proc/PID/fd), UDP sockets of stirgate in the
# media port range (ss -uanp), stirgate_active_calls. Exit 1 when:
#   - any call failed or was never made (SIPp's counts against the planned calls; none is
#     expected at half the maximum rate);
#   - the CDR lines per (route, outcome) differ from the planned calls per route (a signed call
#     must come out verified — TN-Validation-Passed with its attestation — and forwarded or sent
#     to voicemail; a SIPp caller that got a 200 from the CAPTCHA instead would pass SIPp's
#     check but not this one);
#   - RSS at the last minute of load or after the calls exceeds RSS after the first minute
#     (warm-up: caches, pools, allocator arenas filled) by more than RSS_TOL_PCT (default 20) %
#     + RSS_TOL_MIB (default 4) MiB;
#   - after the calls ended, more fds are open than at start + FD_TOL (default 4: the lists
#     store's WAL/SHM files and the certificate cache's HTTP connection pool may open late);
#   - after the calls ended, any RTP port is still bound, or stirgate_active_calls is not 0.
#
# Knobs: SOAK_S (600), RATE, MAX_RATE, RSS_TOL_PCT, RSS_TOL_MIB, FD_TOL, STIRGATE_BIN (else a release build),
# KEEP=1 (keep the work directory), NICE (10). Needs sipp (apt-get install sip-tester), python3,
# ss (iproute2). Everything listens on 127.0.0.1 and every SIPp run has a call count and a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SOAK_S=${SOAK_S:-600}
RSS_TOL_PCT=${RSS_TOL_PCT:-20}
RSS_TOL_MIB=${RSS_TOL_MIB:-4}
FD_TOL=${FD_TOL:-4}
NICE=${NICE:-10}
SCEN="$ROOT/crates/stirgate/tests/scenarios"

for tool in sipp python3 ss; do
    command -v "$tool" >/dev/null || { echo "soak: $tool missing" >&2; exit 2; }
done
if [ -z "${STIRGATE_BIN:-}" ]; then
    nice -n "$NICE" cargo build --release -q -p stirgate
    STIRGATE_BIN="${CARGO_TARGET_DIR:-target}/release/stirgate"
fi
BIN=$(realpath "$STIRGATE_BIN")
WORK=$(mktemp -d /tmp/soak.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ "${KEEP:-}" = 1 ] && echo "soak: work directory kept: $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); t=socket.socket(); t.bind(("127.0.0.1",s.getsockname()[1])); print(s.getsockname()[1])'; }

# --- the pieces: certificate server, callee, stirgate --------------------------------------------
mkdir -p "$WORK/www" "$WORK/sipp"
cp certs/test-sp-chain.pem "$WORK/www/sp.pem"
HTTP_PORT=$(free_port); UAS_PORT=$(free_port); SG_PORT=$(free_port); METRICS_PORT=$(free_port)
RTP_LO=31000; RTP_HI=31999
(exec python3 -m http.server "$HTTP_PORT" --bind 127.0.0.1 --directory "$WORK/www" >/dev/null 2>&1) &
PIDS+=($!)
(cd "$WORK/sipp" && exec nice -n "$NICE" sipp -sn uas -i 127.0.0.1 -p "$UAS_PORT" -nostdin \
    -max_socket 10000 >/dev/null 2>&1) &
PIDS+=($!)
cat > "$WORK/stirgate.toml" <<TOML
[sip]
listen = ["udp:127.0.0.1:$SG_PORT"]
[forward]
target = "sip:callee@127.0.0.1:$UAS_PORT"
[metrics]
listen = "127.0.0.1:$METRICS_PORT"
[cdr]
path = "$WORK/cdr.jsonl"
[routes]
A = "forward"
B = "forward"
C = "voicemail"
missing = "captcha"
failed = "reject"
[captcha]
mode = "fixed"
answer = "10"
attempts = 1
timeout_s = 5
[voicemail]
dir = "$WORK/voicemail"
[lists]
path = "$WORK/lists.sqlite3"
[stir]
trust_anchors = "$ROOT/certs/test-sti-ca.pem"
allow_http_x5u = true
# PASSporTs are signed before each load phase, not per call: a window covering the phase.
iat_window_s = $((SOAK_S + 300))
[media]
address = "127.0.0.1"
rtp_ports = "$RTP_LO-$RTP_HI"
[status]
listen = ""
TOML
BLOCKED=15559990000
"$BIN" lists add --list block "$BLOCKED" --config "$WORK/stirgate.toml" >/dev/null
STIRGATE_LOG=warn nice -n "$NICE" "$BIN" run --config "$WORK/stirgate.toml" 2>"$WORK/stirgate.log" &
SG_PID=$!
PIDS+=($SG_PID)
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" >/dev/null 2>&1 && break
    sleep 0.2
done
kill -0 "$SG_PID" || { echo "soak: stirgate did not start"; cat "$WORK/stirgate.log"; exit 2; }

# Unsigned scenarios take the caller from field0; the blocked one calls from $BLOCKED.
sed 's/sip:+15551230001@/sip:[field0]@/' "$SCEN/uac_captcha_pass.xml" > "$WORK/sipp/captcha_pass.xml"
sed 's/sip:+15551230001@/sip:[field0]@/' "$SCEN/uac_captcha_fail.xml" > "$WORK/sipp/captcha_fail.xml"
sed "s/sip:+15551230001@/sip:+$BLOCKED@/" "$SCEN/uac_603.xml" > "$WORK/sipp/blocked.xml"
cp "$SCEN/uac_identity.xml" "$SCEN/uac_voicemail_signed.xml" "$WORK/sipp/"

# --- samples -------------------------------------------------------------------------------------
metric() { # prints the value, or "absent" (never 0 for a series that is not there)
    curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" | awk -v m="$1" '$1 == m { print $2; f=1 } END { if (!f) print "absent" }'
}
rtp_ports() {
    ss -uanp 2>/dev/null | awk -v pid="pid=$SG_PID," -v lo=$RTP_LO -v hi=$RTP_HI \
        'index($0, pid) { n = split($4, a, ":"); p = a[n] + 0; if (p >= lo && p <= hi) c++ } END { print c + 0 }'
}
sample() { # label → prints and records "label rss_kib fds rtp active"
    local rss fds rtp active
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SG_PID/status")
    fds=$(ls "/proc/$SG_PID/fd" | wc -l)
    rtp=$(rtp_ports)
    active=$(metric stirgate_active_calls)
    printf '%-14s rss=%7d KiB  fds=%5d  rtp_ports=%4d  active_calls=%s\n' "$1" "$rss" "$fds" "$rtp" "$active" | tee -a "$WORK/samples.txt"
    echo "$1 $rss $fds $rtp $active" >> "$WORK/samples.dat"
}

# --- one load phase: every route at its share of RATE for SECONDS ---------------------------------
NEXT_NUMBER=1000000
sign_csv() { # attest count file
    {
        echo SEQUENTIAL
        seq "$2" | xargs -P 2 -I{} "$BIN" sign --key certs/test-sp-leaf.key \
            --x5u "http://127.0.0.1:$HTTP_PORT/sp.pem" --attest "$1" --orig 15551230001 --dest 15551230002
    } > "$3"
}
numbers_csv() { # count file
    { echo SEQUENTIAL; seq "$NEXT_NUMBER" $((NEXT_NUMBER + $1 - 1)) | sed 's/^/+1666/'; } > "$2"
    NEXT_NUMBER=$((NEXT_NUMBER + $1))
}
# phase NAME RATE SECONDS → runs the mix, returns the number of failed calls in $FAILED
phase() {
    local name=$1 rate=$2 secs=$3 dir="$WORK/$1"
    mkdir -p "$dir"
    # route scenario share(permille) inf-kind
    local routes=(
        "A uac_identity.xml 300 A"
        "B uac_identity.xml 200 B"
        "C uac_voicemail_signed.xml 100 C"
        "pass captcha_pass.xml 150 num"
        "fail captcha_fail.xml 150 num"
        "blocked blocked.xml 100 none"
    )
    local runs=() r route sc share kind rr calls
    for r in "${routes[@]}"; do
        read -r route sc share kind <<<"$r"
        rr=$(python3 -c "print(round($rate * $share / 1000, 3))")
        calls=$(python3 -c "print(max(1, round($rate * $share / 1000 * $secs)))")
        local args=()
        case $kind in
            A|B|C) sign_csv "$kind" "$calls" "$dir/$route.csv"; args=(-inf "$dir/$route.csv") ;;
            num) numbers_csv "$calls" "$dir/$route.csv"; args=(-inf "$dir/$route.csv") ;;
        esac
        echo "$calls" > "$dir/$route.planned"
        runs+=("$route $sc $rr $calls ${args[*]:-}")
    done
    local spids=() line
    for line in "${runs[@]}"; do
        read -r route sc rr calls rest <<<"$line"
        # shellcheck disable=SC2086
        (cd "$dir" && exec nice -n "$NICE" timeout $((secs + 120)) sipp -sf "$WORK/sipp/$sc" \
            "127.0.0.1:$SG_PORT" -i 127.0.0.1 -p "$(free_port)" -mp "$(free_port)" \
            -r "$rr" -rp 1000 -m "$calls" -l 5000 -nostdin -timeout $((secs + 90))s -max_socket 10000 \
            -trace_stat -stf "$dir/$route.stat.csv" -fd 5 $rest >"$dir/$route.out" 2>&1) &
        spids+=($!)
        PIDS+=($!)
    done
    echo "$name: ${runs[*]}" | sed 's/ -inf [^ ]*//g' > "$dir/plan.txt"
    FAILED=0
    PHASE_PIDS=("${spids[@]}")
}
# waits for the phase's SIPps, sampling each minute; sums failed calls
finish_phase() {
    local name=$1 sample_label=${2:-} t=0 p f
    while :; do
        local alive=0
        for p in "${PHASE_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 5; t=$((t + 5))
        if [ -n "$sample_label" ] && [ $((t % 60)) = 0 ]; then sample "${sample_label}$((t / 60))min"; fi
    done
    for p in "${PHASE_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    FAILED=0
    for f in "$WORK/$name"/*.stat.csv; do
        # Last line, columns SuccessfulCall(C) and FailedCall(C); a call never made (SIPp's
        # timeout ended it first) counts as failed too.
        local fc route
        route=$(basename "$f" .stat.csv)
        fc=$(python3 - "$f" "$(cat "$WORK/$name/$route.planned")" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=';'))
head, last = rows[0], rows[-1]
ok, failed = int(last[head.index("SuccessfulCall(C)")]), int(last[head.index("FailedCall(C)")])
print(failed + max(0, int(sys.argv[2]) - ok - failed), ok, sys.argv[2])
PY
)
        read -r failed ok planned <<<"$fc"
        printf '  %-8s planned=%6d ok=%6d failed or not made=%d\n' "$route" "$planned" "$ok" "$failed" | tee -a "$WORK/$name/summary.txt"
        FAILED=$((FAILED + failed))
    done
    ls "$WORK/$name"/*.stat.csv >/dev/null 2>&1 || { echo "soak: no SIPp statistics in $name"; FAILED=999999; }
}

# --- the rate -------------------------------------------------------------------------------------
if [ -z "${RATE:-}" ]; then
    if [ -z "${MAX_RATE:-}" ]; then
        MAX_RATE=0
        for r in 2 4 8 16 32; do
            phase "measure-$r" "$r" 20
            finish_phase "measure-$r" > "$WORK/measure-$r.txt"
            echo "measure: $r calls/s for 20 s: $FAILED failed"
            [ "$FAILED" = 0 ] || break
            MAX_RATE=$r
            # Let the media calls of the step end before the next one.
            sleep 10
        done
        [ "$MAX_RATE" -gt 0 ] || { echo "soak: even 2 calls/s fail"; exit 1; }
    fi
    RATE=$(python3 -c "print($MAX_RATE / 2)")
fi
echo "soak: ${SOAK_S}s at $RATE calls/s (max ${MAX_RATE:-given as RATE}), stirgate pid $SG_PID, work $WORK"

# --- the soak -------------------------------------------------------------------------------------
for _ in $(seq 60); do [ "$(metric stirgate_active_calls)" = 0 ] && break; sleep 1; done
# The soak's own CDR file: the measurement's lines (if any) go aside; SIGUSR1 reopens cdr.path.
if [ -f "$WORK/cdr.jsonl" ]; then
    mv "$WORK/cdr.jsonl" "$WORK/cdr-measure.jsonl"
    kill -USR1 "$SG_PID"
    sleep 1
fi
sample start
START_FDS=$(awk '$1 == "start" { print $3 }' "$WORK/samples.dat")
phase soak "$RATE" "$SOAK_S"
finish_phase soak "t+"
sample load-done
# Calls end by themselves; give the last media sessions time to close.
for _ in $(seq 60); do
    [ "$(metric stirgate_active_calls)" = 0 ] && [ "$(rtp_ports)" = 0 ] && break
    sleep 1
done
sleep 2
sample after-calls

# --- verdict --------------------------------------------------------------------------------------
echo "outcomes (CDR: route, outcome, verstat, attest; got / expected from the planned calls):"
python3 - "$WORK" <<'PY' || CDR_VERDICT=1
import collections, glob, json, os, sys
work = sys.argv[1]
# What each planned call of the mix must leave in the CDR file.
want_of = {
    "A": ("forward", "forwarded", "TN-Validation-Passed", "A"),
    "B": ("forward", "forwarded", "TN-Validation-Passed", "B"),
    "C": ("voicemail", "voicemail_saved", "TN-Validation-Passed", "C"),
    "pass": ("captcha", "captcha_passed", "No-TN-Validation", None),
    "fail": ("captcha", "captcha_failed", "No-TN-Validation", None),
    "blocked": ("block", "blocked", "No-TN-Validation", None),
}
want = collections.Counter()
for planned in glob.glob(os.path.join(work, "soak", "*.planned")):
    route = os.path.basename(planned)[: -len(".planned")]
    want[want_of[route]] += int(open(planned).read())
got = collections.Counter()
for line in open(os.path.join(work, "cdr.jsonl")):
    d = json.loads(line)
    got[(d.get("route"), d.get("outcome"), d.get("verstat"), d.get("attest"))] += 1
for key in sorted(set(got) | set(want), key=lambda k: -want[k]):
    mark = "" if got[key] == want[key] else "   <-- differs"
    print(f"  {key[0]:10} {key[1]:16} {key[2]:21} {str(key[3]):5} {got[key]:6} / {want[key]}{mark}")
if got != want:
    print("FAIL: the CDR lines per route and outcome are not the planned calls")
    sys.exit(1)
PY
echo "recordings: $(ls "$WORK/voicemail" | grep -c '\.wav$' || true)"
python3 - "$WORK/samples.dat" "$RSS_TOL_PCT" "$RSS_TOL_MIB" "$FD_TOL" "$FAILED" > "$WORK/verdict.txt" <<'PY' || VERDICT=1
import sys
rows = [l.split() for l in open(sys.argv[1])]
by = {r[0]: list(map(float, r[1:])) for r in rows}
tol_pct, tol_mib, fd_tol, failed = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
minutes = [r for r in rows if r[0].startswith("t+")]
warm = by[minutes[0][0]] if minutes else by["start"]
last = by[minutes[-1][0]] if minutes else by["load-done"]
after, start = by["after-calls"], by["start"]
problems = []
if failed:
    problems.append(f"{failed} failed calls")
limit = warm[0] * (1 + tol_pct / 100) + tol_mib * 1024
print(f"RSS: start {start[0]/1024:.1f} MiB, after warm-up {warm[0]/1024:.1f} MiB, last minute of load "
      f"{last[0]/1024:.1f} MiB, after calls {after[0]/1024:.1f} MiB (limit {limit/1024:.1f} MiB)")
if max(last[0], after[0]) > limit:
    problems.append("RSS grew beyond the tolerance")
print(f"fds: start {start[1]:.0f}, after calls {after[1]:.0f} (limit {start[1] + fd_tol:.0f})")
if after[1] > start[1] + fd_tol:
    problems.append("fds leaked")
print(f"RTP ports bound after the calls: {after[2]:.0f}; active calls: {after[3]:.0f}")
if after[2] > 0:
    problems.append("RTP ports leaked")
if after[3] > 0:
    problems.append("calls still active")
print("PASS" if not problems else "FAIL: " + "; ".join(problems))
sys.exit(1 if problems else 0)
PY
cat "$WORK/verdict.txt"
[ -z "${CDR_VERDICT:-}" ] || echo "FAIL: CDR counts (above)"
exit "${VERDICT:-${CDR_VERDICT:-0}}"
