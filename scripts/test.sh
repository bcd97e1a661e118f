#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), Rust unit tests, then the CLI, gdb and LLDB suites
# against every fixture toolchain, from kernel cores and live processes.
#   GOMAP_TAGS=go1.23,go1.26 scripts/test.sh   restricts the toolchain matrix
#   scripts/test.sh -k lldb                    extra arguments go to pytest
#   GOMAP_NO_FUZZ=1 scripts/test.sh            skips the fuzz smoke (scripts/fuzz.sh --smoke)
set -euo pipefail
cd "$(dirname "$0")/.."
export GOMAP_CACHE="${GOMAP_CACHE:-$HOME/.cache/gomap}"
# One LLDB for every suite: GOMAP_LLDB if set, else lldb-19 (scripts/toolchains.sh), else lldb-16.
GOMAP_LLDB="${GOMAP_LLDB:-$(command -v lldb-19 || command -v lldb-16 || true)}"
export GOMAP_LLDB
scripts/setup.sh --no-demo
# The hostile-values fixture completes the decode_any layouts, as in scripts/fuzz.sh: its regression
# inputs select their fixture by index, and one of them checks that output stays bounded there.
GOMAP_FUZZ_HOSTILE_BIN=$("$GOMAP_CACHE/venv/bin/python" -c 'import sys; sys.path.insert(0, "tests"); import fixturelib as F; print(F.program_core("hostile", "go1.26")["binary"])')
export GOMAP_FUZZ_HOSTILE_BIN
printf '\n== cargo test\n' >&2
cargo test --release --quiet 2>&1 | grep -v '^\s*Compiling' || exit 1
# The fuzz regressions and property tests once more with overflow checks and debug assertions (the
# `checked` profile in Cargo.toml): release wraps on overflow, so overflow regressions only fail here.
printf '\n== cargo test --profile checked (fuzz regressions, property tests)\n' >&2
cargo test --profile checked --quiet --test fuzz_regressions --test reliability_props 2>&1 | grep -v '^\s*Compiling' || exit 1
if [ "${GOMAP_NO_FUZZ:-0}" != 1 ]; then
    # Fuzz smoke: every fuzz target for a few seconds, replaying past crashes (scripts/fuzz.sh;
    # the first run installs cargo-fuzz into the cache and builds the targets, a few minutes).
    printf '\n== fuzz smoke (GOMAP_NO_FUZZ=1 skips)\n' >&2
    scripts/fuzz.sh --smoke >&2 || exit 1
fi
printf '\n== pytest (CLI, gdb, LLDB) on the fixture matrix\n' >&2
exec "$GOMAP_CACHE/venv/bin/pytest" -q -p no:cacheprovider tests "$@"
