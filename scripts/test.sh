#!/usr/bin/env bash
# The one command that runs every test: installs what the tests need when it is missing
# (SIPp: Debian sip-tester; promtool: prometheus; headless Chromium: chromium; Redis for the
# shared-store tests, which start their own redis-server on loopback; espeak-ng for the
# text-to-speech tests; baresip for the interop suite's real client), then runs the suite, then the Debian package test
# (scripts/deb-test.sh: build, dpkg -i, a call through the installed service, purge), which
# needs root (CI runs as root; elsewhere it says it skipped).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v sipp >/dev/null 2>&1 || need_apt+=(sip-tester)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
# The redirect mode's end-to-end test runs Debian's Kamailio with docs/kamailio/stirgate-redirect.cfg.
[ -x /usr/sbin/kamailio ] || need_apt+=(kamailio)
# The interop suite's real client: baresip over TLS with SDES-SRTP.
command -v baresip >/dev/null 2>&1 || need_apt+=(baresip-core)
if ((${#need_apt[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing ${need_apt[*]} ..."
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The tools above are installed now: tests that need one fail instead of skipping without it.
export STIRGATE_REQUIRE_TOOLS=1

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (cargo prints one "test result" per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
bash scripts/deb-test.sh || status=$?
exit "$status"
