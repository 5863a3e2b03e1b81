#!/usr/bin/env bash
# Builds the Debian package of stirgate (target/debian/stirgate_VERSION-1_ARCH.deb) with
# cargo-deb, installing cargo-deb from crates.io first when it is missing. The package's
# metadata is [package.metadata.deb] in crates/stirgate/Cargo.toml; its files are in
# crates/stirgate/debian/. Prints the path of the .deb on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
    echo "installing cargo-deb from crates.io ..." >&2
    cargo install cargo-deb --locked -q
fi
command -v dpkg-shlibdeps >/dev/null 2>&1 || {
    echo "dpkg-shlibdeps is missing: install the Debian package dpkg-dev" >&2
    exit 1
}

# --locked: the versions of Cargo.lock; the release profile of the workspace; --strip: the
# package carries no debug info (the release profile keeps it for profiling).
cargo deb -p stirgate --locked --strip "$@" >&2
deb="$(ls -t target/debian/stirgate_*.deb | head -n 1)"
echo "$deb"
