#!/usr/bin/env bash
# gomap's benchmark, one command: toolchains, a release build, bench fixtures (cached), then every
# measurement side by side with PASS/FAIL per target. See BENCHMARKS.md.
#   scripts/bench.sh                       # sizes 10k,100k,1M,10M; Go 1.23 (classic) and Go 1.26 (swiss)
#   scripts/bench.sh --quick               # smoke run: 10k and 100k, fewer repetitions
#   scripts/bench.sh --sizes 1M --runs 7   # other options: scripts/bench.py --help
# Fixtures and cores live in ${GOMAP_CACHE:-~/.cache/gomap}/bench, never in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOMAP_CACHE="${GOMAP_CACHE:-$HOME/.cache/gomap}"
case " $* " in *" -h "*|*" --help "*) exec python3 scripts/bench.py --help ;; esac
scripts/toolchains.sh
cargo build --release --features python 2>&1 | grep -v '^\s*\(Compiling\|Downloaded\|Downloading\)' >&2 || true
test -x target/release/gomap
exec python3 scripts/bench.py "$@"
