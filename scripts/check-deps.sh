#!/usr/bin/env bash
# The dependency rules of ARCHITECTURE.md, checked with cargo tree.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
tree() { cargo tree -q -e normal -p "$1" --prefix none 2>/dev/null | sed 's/ .*//' | sort -u; }

for core in sip-proto b2bua; do
    for banned in tokio reqwest metrics-exporter-prometheus hyper; do
        if tree "$core" | grep -qx "$banned"; then
            echo "dependency rule broken: $core depends on $banned"; fail=1
        fi
    done
done
for crate in sip stir media b2bua stirgate test-support; do
    if cargo tree -q -e normal -p "$crate" --depth 1 --prefix none 2>/dev/null | sed 's/ .*//' | tail -n +2 | grep -qx rsip; then
        echo "dependency rule broken: $crate depends on rsip directly (only sip-proto may)"; fail=1
    fi
done
if cargo tree -q -e normal,dev -i stirgate --workspace --prefix none 2>/dev/null | sed 's/ .*//' | sort -u | grep -vx stirgate | grep -q .; then
    echo "dependency rule broken: something depends on stirgate"; fail=1
fi
for crate in sip-proto sip stir media b2bua test-support stirgate; do
    cargo check -q -p "$crate" || { echo "$crate does not build alone"; fail=1; }
done
cargo check -q -p stir --no-default-features || { echo "stir without default features does not build"; fail=1; }
cargo check -q -p media --no-default-features || { echo "media without default features does not build"; fail=1; }
[ "$fail" -eq 0 ] && echo "dependency rules: ok"
exit "$fail"
