#!/usr/bin/env bash
# Set up everything gomap needs on a fresh Debian machine, then run the demo on real fixture cores.
#   scripts/setup.sh            toolchains + build + fixtures + demo
#   scripts/setup.sh --no-demo  the same without the demo (used by scripts/test.sh)
# Toolchains, Go build caches and fixture cores live in ${GOMAP_CACHE:-~/.cache/gomap}, never in the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=1
[ "${1:-}" = "--no-demo" ] && DEMO=0
export GOMAP_CACHE="${GOMAP_CACHE:-$HOME/.cache/gomap}"

step() { printf '\n== %s\n' "$*" >&2; }

step "toolchains (Go 1.19-1.27, gdb, LLDB)"
scripts/toolchains.sh

step "build gomap (CLI + Python module for gdb/LLDB)"
cargo build --release --features python 2>&1 | grep -v '^\s*\(Compiling\|Downloaded\|Downloading\)' >&2 || true
test -x target/release/gomap && test -f target/release/libgomap.so
# The debuggers load this copy: a later `cargo build`/`cargo test` without the python feature
# rewrites target/release/libgomap.so as a library Python cannot import.
mkdir -p target/python && cp -f target/release/libgomap.so target/python/_gomap.abi3.so

step "Python tools (pytest; maturin, which builds the pip package; in $GOMAP_CACHE/venv)"
if [ ! -x "$GOMAP_CACHE/venv/bin/pytest" ] || [ ! -x "$GOMAP_CACHE/venv/bin/maturin" ]; then
    [ -x "$GOMAP_CACHE/venv/bin/pip" ] || python3 -m venv "$GOMAP_CACHE/venv"
    "$GOMAP_CACHE/venv/bin/pip" install -q pytest 'maturin>=1.5,<2' >&2
fi

if [ $DEMO = 0 ]; then
    step "fixtures (every toolchain, kernel cores)"
    scripts/fixtures.sh
    exit 0
fi

step "fixtures for the demo (Go 1.23 classic maps, Go 1.26 swiss maps)"
scripts/fixtures.sh --tags go1.23,go1.26 >&2
FX="$GOMAP_CACHE/fixtures/current"
G=target/release/gomap

demo() { printf '\n$ %s\n' "$*"; "$@" || true; }
for tag in go1.23 go1.26; do
    B="$FX/$tag/maps" C="$FX/$tag/core"
    printf '\n######## %s: a kernel core dump of fixtures/maps built with %s\n' "$tag" "$(cat "$FX/$tag/build.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["go_version"])')"
    demo $G maps --binary "$B" --core "$C" --sort bytes
    demo $G show --binary "$B" --core "$C" main.growingMap --limit 3
    demo $G check --binary "$B" --core "$C" main.deletedMap main.tombMap
    demo $G show --binary "$B" --core "$C" main.ifaceMap --json
    demo $G buckets --binary "$B" --core "$C" main.churnMap
done
printf '\n######## the same engine inside gdb\n'
demo gdb -nx -batch -ex "source python/gomap.py" -ex "gomap show main.structMap" -ex "print 'main.intMap'" "$FX/go1.26/maps" "$FX/go1.26/core"
printf '\n######## and inside LLDB\n'
demo "$(command -v lldb-19 || command -v lldb-16)" -b -o "command script import python/gomap_lldb.py" -o "gomap check main.tombMap" \
    -o "target variable -P 1 main.litMap" "$FX/go1.26/maps" -c "$FX/go1.26/core"
