#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), Rust unit tests, then the CLI, gdb and LLDB suites
# against every fixture toolchain, from kernel cores and live processes.
#   GOMAP_TAGS=go1.23,go1.26 scripts/test.sh   restricts the toolchain matrix
#   scripts/test.sh -k lldb                    extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
export GOMAP_CACHE="${GOMAP_CACHE:-$HOME/.cache/gomap}"
scripts/setup.sh --no-demo
printf '\n== cargo test\n' >&2
cargo test --release --quiet 2>&1 | grep -v '^\s*Compiling' || exit 1
printf '\n== pytest (CLI, gdb, LLDB) on the fixture matrix\n' >&2
exec "$GOMAP_CACHE/venv/bin/pytest" -q -p no:cacheprovider tests "$@"
