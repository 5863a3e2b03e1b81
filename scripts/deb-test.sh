#!/usr/bin/env bash
# The Debian package end to end, as an operator installs it (root needed; CI runs as root):
#   1. build the .deb (scripts/build-deb.sh) and check that `cargo install --path` works too;
#   2. install it with dpkg; check the user, the conffile and its permissions;
#   3. check the systemd unit with `systemd-analyze verify` and the logrotate file;
#   4. start the installed /usr/bin/stirgate as the package's user with the installed config
#      (no systemd needed), in a private network namespace so its fixed loopback ports are
#      surely free, and place calls through it with SIPp: one unsigned call answered by the
#      built-in CAPTCHA prompts, then the same caller on the fast-pass list (added with the
#      installed `stirgate lists`) forwarded to a SIPp callee at the configured forward target;
#      rotate the CDR file as logrotate does (rename + SIGUSR1) and check a new one is started;
#   5. purge the package and check that the user and its folders are gone.
# The SIP transcript of the calls goes to $DEB_TRANSCRIPT (default target/debian/deb-transcript.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

if [ "$(id -u)" -ne 0 ]; then
    if [ "${CI:-}" = "true" ]; then
        echo "deb test: FAILED: it needs root (dpkg, a system user) and CI runs as root" >&2
        exit 1
    fi
    echo "deb test: SKIPPED: needs root (dpkg -i, a system user); CI runs it as root"
    exit 0
fi

# One deb test at a time on a machine (dpkg and the package name are machine-wide).
exec 9>/var/lock/stirgate-deb-test.lock
flock 9

step() { echo "== deb test: $*"; }
fail() {
    echo "deb test: FAILED: $*" >&2
    exit 1
}

need=()
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v logrotate >/dev/null 2>&1 || need+=(logrotate)
command -v dpkg-shlibdeps >/dev/null 2>&1 || need+=(dpkg-dev)
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if ((${#need[@]})); then
    step "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

transcript="${DEB_TRANSCRIPT:-$repo/target/debian/deb-transcript.txt}"
work="$(mktemp -d)"
chmod 755 "$work"
cleanup() {
    dpkg --purge stirgate >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
# A package left by an interrupted run would hide what this one installs.
dpkg --purge stirgate >/dev/null 2>&1 || true

step "build"
deb="$(bash scripts/build-deb.sh)"
[ -f "$deb" ] || fail "no .deb built"
dpkg-deb --info "$deb" | sed -n '/Package:/,/Description:/p'
contents="$(dpkg-deb --contents "$deb")"
for f in ./usr/bin/stirgate ./etc/stirgate/stirgate.toml ./lib/systemd/system/stirgate.service \
    ./etc/logrotate.d/stirgate; do
    grep -q " $f\$" <<<"$contents" || fail "$f is not in the package"
done

step "cargo install --path crates/stirgate (same target folder: no second build)"
cargo install --path crates/stirgate --locked --root "$work/cargo-root" --target-dir target -q
(cd "$work" && "$work/cargo-root/bin/stirgate" check-config >/dev/null) ||
    fail "the cargo-installed stirgate does not validate its defaults in an empty folder"

step "install"
dpkg -i "$deb"
[ "$(command -v stirgate)" = /usr/bin/stirgate ] || fail "stirgate is not /usr/bin/stirgate"
getent passwd stirgate | grep -q ':/var/lib/stirgate:/usr/sbin/nologin$' ||
    fail "no stirgate system user: $(getent passwd stirgate)"
dpkg-query -W -f='${Conffiles}\n' stirgate | grep -q '/etc/stirgate/stirgate.toml' ||
    fail "/etc/stirgate/stirgate.toml is not a conffile"
[ "$(stat -c '%U:%G %a' /etc/stirgate/stirgate.toml)" = "root:stirgate 640" ] ||
    fail "config permissions: $(stat -c '%U:%G %a' /etc/stirgate/stirgate.toml)"
for d in /var/lib/stirgate /var/log/stirgate; do
    [ "$(stat -c '%U' "$d")" = stirgate ] || fail "$d is not owned by stirgate"
done
runuser -u stirgate -- /usr/bin/stirgate check-config --config /etc/stirgate/stirgate.toml >/dev/null ||
    fail "the installed config does not validate"

step "systemd-analyze verify"
# Verifies the unit offline (no running systemd needed): syntax, the executables it names,
# the sandboxing directives this systemd knows.
if ! out="$(systemd-analyze verify /lib/systemd/system/stirgate.service 2>&1)"; then
    fail "systemd-analyze verify: $out"
fi
if grep -q 'stirgate.service' <<<"$out"; then
    fail "systemd-analyze verify complains about the unit: $out"
fi
echo "systemd-analyze verify: clean${out:+ (about other units: $out)}"
systemd-analyze security --offline=true /lib/systemd/system/stirgate.service 2>/dev/null |
    tail -n 1 || true

step "logrotate"
logrotate --debug /etc/logrotate.d/stirgate >"$work/logrotate.log" 2>&1 ||
    fail "logrotate rejects /etc/logrotate.d/stirgate: $(cat "$work/logrotate.log")"
if grep -qE '^[[:space:]]*copytruncate' /etc/logrotate.d/stirgate; then fail "logrotate file uses copytruncate"; fi

step "run the installed binary as user stirgate and call through it"
scenarios="$repo/crates/stirgate/tests/scenarios"
cat >"$work/inside.sh" <<'INSIDE'
set -u
ip link set lo up
cd /var/lib/stirgate
# setpriv execs stirgate itself as the package's user (runuser would stay as a parent that
# answers SIGTERM with its own exit status).
STIRGATE_LOG=info NO_COLOR=1 setpriv --reuid=stirgate --regid=stirgate --init-groups \
    --inh-caps=-all /usr/bin/stirgate run --config /etc/stirgate/stirgate.toml \
    2>"$WORK/stirgate.log" &
sg=$!
for _ in $(seq 1 200); do
    grep -q "stirgate ready" "$WORK/stirgate.log" && break
    sleep 0.1
done
grep -q "stirgate ready" "$WORK/stirgate.log" || { echo "not ready"; exit 1; }
uac() {
    (cd "$WORK/$1" && sipp -sf "$SCENARIOS/uac_hangup_after_answer.xml" -i 127.0.0.1 -p "$2" \
        -mp "$3" -m 1 -nostdin -timeout 30s -trace_msg -trace_err 127.0.0.1:5060 >/dev/null 2>&1)
}
mkdir -p "$WORK/call1" "$WORK/call2" "$WORK/callee"
# Call 1: unsigned, not listed: routes.missing = captcha, answered by stirgate itself.
uac call1 5072 6000; c1=$?
# Call 2: the same caller on the fast-pass list is forwarded to forward.target (127.0.0.1:5070).
runuser -u stirgate -- /usr/bin/stirgate lists add --list allow +15551230001 \
    --note "deb test" --config /etc/stirgate/stirgate.toml
(cd "$WORK/callee" && sipp -sn uas -i 127.0.0.1 -p 5070 -mp 6100 -m 1 -nostdin -timeout 30s \
    -trace_msg -trace_err >/dev/null 2>&1) &
callee=$!
sleep 0.5
uac call2 5074 6200; c2=$?
wait "$callee"; ce=$?
# Rotate the CDR file as logrotate does: rename, then SIGUSR1 makes stirgate start a new one.
sleep 0.5
mv /var/log/stirgate/cdr.jsonl /var/log/stirgate/cdr.jsonl.1
kill -USR1 "$sg"
sleep 0.5
# Call 3: off the fast-pass list again, so the CAPTCHA answers it (the callee is gone).
runuser -u stirgate -- /usr/bin/stirgate lists remove --list allow +15551230001 \
    --config /etc/stirgate/stirgate.toml
uac call1 5076 6300; c3=$?
kill -TERM "$sg"
wait "$sg"; s=$?
echo "calls: captcha=$c1 forwarded=$c2 callee=$ce after-rotation=$c3 stirgate-exit=$s"
INSIDE
result="$(WORK="$work" SCENARIOS="$scenarios" unshare -n bash "$work/inside.sh" 2>&1)" || true
echo "$result"
grep -q "calls: captcha=0 forwarded=0 callee=0 after-rotation=0 stirgate-exit=0" <<<"$result" ||
    fail "calls through the installed package: $result
$(cat "$work/stirgate.log")"
grep -q "TEST STI-CA" "$work/stirgate.log" || fail "no loud warning about the test trust anchor"
before="$(cat /var/log/stirgate/cdr.jsonl.1)"
after="$(cat /var/log/stirgate/cdr.jsonl)"
[ "$(wc -l <<<"$before")" -eq 2 ] || fail "2 CDR lines before the rotation: $before"
grep -q '"route":"captcha"' <<<"$(sed -n 1p <<<"$before")" || fail "call 1 route: $before"
grep -q '"route":"forward"' <<<"$(sed -n 2p <<<"$before")" || fail "call 2 route: $before"
grep -q '"outcome":"forwarded"' <<<"$(sed -n 2p <<<"$before")" || fail "call 2 outcome: $before"
[ "$(wc -l <<<"$after")" -eq 1 ] || fail "1 CDR line in the new file after SIGUSR1: $after"
[ "$(stat -c '%U' /var/log/stirgate/cdr.jsonl)" = stirgate ] || fail "CDR file owner"
[ -f /var/lib/stirgate/lists.sqlite3 ] || fail "no lists file in /var/lib/stirgate"

mkdir -p "$(dirname "$transcript")"
{
    echo "# A call through the installed stirgate Debian package ($(basename "$deb"))"
    echo "# $(date -u +%FT%TZ), $(uname -srm); /usr/bin/stirgate $(/usr/bin/stirgate --version)"
    echo "# run as: $(getent passwd stirgate)"
    echo "# command: setpriv --reuid=stirgate --regid=stirgate --init-groups /usr/bin/stirgate run --config /etc/stirgate/stirgate.toml"
    echo "# (private network namespace, loopback; SIPp caller +15551230001 -> stirgate 127.0.0.1:5060)"
    echo
    echo "## /etc/stirgate/stirgate.toml (installed conffile, $(stat -c '%U:%G %a' /etc/stirgate/stirgate.toml))"
    grep -v '^#' /etc/stirgate/stirgate.toml | grep -v '^$'
    echo
    echo "## result: $(grep '^calls:' <<<"$result")"
    echo
    echo "## stirgate log"
    cat "$work/stirgate.log"
    echo
    echo "## CDR lines (/var/log/stirgate/cdr.jsonl.1, then the reopened cdr.jsonl)"
    echo "$before"
    echo "$after"
    echo
    echo "## Call 2 (fast-pass, forwarded): SIP messages seen by the caller"
    cat "$work/call2"/*_messages.log 2>/dev/null
    echo
    echo "## Call 2: SIP messages seen by the callee at forward.target (stirgate's outbound leg)"
    cat "$work/callee"/*_messages.log 2>/dev/null
    echo
    echo "## Calls 1 and 3 (unsigned, answered by the built-in CAPTCHA): SIP messages seen by the caller"
    cat "$work/call1"/*_messages.log 2>/dev/null
} >"$transcript"
echo "transcript: $transcript"

step "purge"
dpkg --purge stirgate
if getent passwd stirgate >/dev/null; then fail "user stirgate still exists after purge"; fi
if getent group stirgate >/dev/null; then fail "group stirgate still exists after purge"; fi
for p in /usr/bin/stirgate /etc/stirgate /var/lib/stirgate /var/log/stirgate /var/cache/stirgate \
    /lib/systemd/system/stirgate.service /etc/logrotate.d/stirgate; do
    if [ -e "$p" ]; then fail "$p is still there after purge"; fi
done
echo "deb test: ok (built, installed, verified, called through, purged)"
