#!/usr/bin/env bash
# Build gomap's fixture program with every toolchain of the matrix and take a kernel core dump of each.
#
#   scripts/fixtures.sh                      # whole matrix (skips tags already complete)
#   scripts/fixtures.sh --tags go1.26,go1.23 # a subset
#   scripts/fixtures.sh --list               # print the tag names
#   scripts/fixtures.sh --specs              # one JSON line per tag: impl, toolchain, experiment, pie, cgo
#   scripts/fixtures.sh --dir                # the fixture dir for the current sources (builds nothing)
#
# Output (outside the repository):
#   ${GOMAP_CACHE:-~/.cache/gomap}/fixtures/<hash>/<tag>/{maps,core,truth.json,truth.json.big.json,build.json,run.log}
#   ${GOMAP_CACHE}/fixtures/<hash>/matrix.json and the symlink ${GOMAP_CACHE}/fixtures/current -> <hash>
# <hash> covers fixtures/maps/*, this script and GOMAP_BIG (bigMap size, default 1000000).
# Env: GOMAP_JOBS (parallel tags, default 2), GOMAP_CORE_TIMEOUT (seconds to wait for the truth, default 180),
#      GOMAP_KEEP (fixture sets kept, default 2: the current one and the previous).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/fixtures/maps"
CACHE="${GOMAP_CACHE:-$HOME/.cache/gomap}"
ALL_TAGS=(go1.19 go1.21 go1.22 go1.23 go1.23-cgo go1.24 go1.24-noswissmap go1.25 go1.25-noswissmap
          go1.26 go1.26-pie go1.27 go1.27-mapsplitgroup)

die() { echo "fixtures: $*" >&2; exit 1; }

# tag_spec TAG: sets GO GOEXP IMPL PIE CGO
tag_spec() {
    local tag=$1 base=${1%%-*} variant=""
    [ "$tag" != "$base" ] && variant=${tag#*-}
    case $base in
        go1.19) GO=/usr/lib/go-1.19/bin/go ;;
        go1.21) GO=$CACHE/go/1.21.13/bin/go ;;
        go1.22) GO=$CACHE/go/1.22.10/bin/go ;;
        go1.23) GO=$CACHE/go/1.23.9/bin/go ;;
        go1.24) GO=$CACHE/go/1.24.11/bin/go ;;
        go1.25) GO=$CACHE/go/1.25.5/bin/go ;;
        go1.26) GO=$CACHE/go/1.26.6/bin/go ;;
        go1.27) GO=$CACHE/go/1.27.3/bin/go ;;
        *) die "unknown tag '$tag' (known: ${ALL_TAGS[*]})" ;;
    esac
    case $base in go1.19|go1.21|go1.22|go1.23) IMPL=classic ;; *) IMPL=swiss ;; esac
    GOEXP="" PIE=false CGO=false
    case $variant in
        "") ;;
        noswissmap)    [[ $base == go1.24 || $base == go1.25 ]] || die "$tag: noswissmap only exists in 1.24/1.25"
                       GOEXP=noswissmap IMPL=classic ;;
        mapsplitgroup) GOEXP=mapsplitgroup ;;
        pie)           PIE=true ;;
        cgo)           CGO=true PIE=true ;;
        *) die "unknown tag '$tag' (known: ${ALL_TAGS[*]})" ;;
    esac
}

fixture_hash() {
    {
        for f in $(cd "$SRC" && ls go.mod *.go | LC_ALL=C sort); do
            echo "== $f"; cat "$SRC/$f"
        done
        echo "== fixtures.sh"; cat "$ROOT/scripts/fixtures.sh"
        [ -n "${GOMAP_BIG:-}" ] && [ "${GOMAP_BIG}" != 1000000 ] && echo "== big ${GOMAP_BIG}"
        true
    } | sha256sum | cut -c1-16
}

json_str() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }

# find_core DIR PID: the file the kernel wrote for PID according to core_pattern (plain names only).
check_core_pattern() {
    local pat; pat=$(cat /proc/sys/kernel/core_pattern)
    case $pat in
        "|"*) die "core_pattern is a pipe ('$pat'): kernel cores do not land in the cwd. As root: echo core > /proc/sys/kernel/core_pattern" ;;
        */*)  die "core_pattern is a path ('$pat'), not a plain file name. As root: echo core > /proc/sys/kernel/core_pattern" ;;
        "")   die "core_pattern is empty" ;;
    esac
}

find_core() {  # DIR PID
    local dir=$1 pid=$2 pat prefix f
    pat=$(cat /proc/sys/kernel/core_pattern)
    prefix=${pat%%%*}
    for f in "$dir/$prefix" "$dir/$prefix.$pid" "$dir/$prefix"*; do
        [ -f "$f" ] && [ -s "$f" ] && { echo "$f"; return 0; }
    done
    return 1
}

build_one() {  # TAG  (runs in a child; prints one line)
    local tag=$1 dir="$FIXDIR/$1"
    tag_spec "$tag"
    if [ -f "$dir/.complete" ]; then echo "$tag: cached $dir"; return 0; fi
    [ -x "$GO" ] || { echo "$tag: FAILED: toolchain $GO missing (run scripts/toolchains.sh)"; return 1; }
    rm -rf "$dir"; mkdir -p "$dir"
    local log="$dir/run.log" t0 t1 t2
    t0=$(date +%s.%N)
    local flags=(-trimpath -o "$dir/maps")
    $PIE && flags+=(-buildmode=pie)
    local cgo_enabled=0; $CGO && cgo_enabled=1
    if ! (cd "$SRC" && env GOTOOLCHAIN=local GOFLAGS= GOENV=off GOEXPERIMENT="$GOEXP" CGO_ENABLED=$cgo_enabled \
            GOCACHE="$CACHE/gocache" GOPATH="$CACHE/gopath" GOMODCACHE="$CACHE/gopath/pkg/mod" \
            "$GO" build "${flags[@]}" .) >"$log" 2>&1; then
        echo "$tag: FAILED: go build (see $log)"; return 1
    fi
    t1=$(date +%s.%N)
    local gover; gover=$(GOTOOLCHAIN=local "$GO" env GOVERSION)
    # Run it, wait for its truth, abort it into a core.
    rm -f "$dir/truth.json" "$dir/truth.json.big.json"
    (
        cd "$dir"
        ulimit -c unlimited || { echo "cannot raise the core size limit (ulimit -c unlimited)"; exit 1; }
        export GOTRACEBACK=crash GOMAP_TRUTH="$dir/truth.json"
        exec ./maps
    ) >>"$log" 2>&1 &
    local pid=$! waited=0 limit=$(( ${GOMAP_CORE_TIMEOUT:-180} * 10 ))
    while [ ! -f "$dir/truth.json" ]; do
        if ! kill -0 $pid 2>/dev/null; then echo "$tag: FAILED: fixture exited before writing its truth (see $log)"; return 1; fi
        if [ $waited -ge $limit ]; then kill -KILL $pid 2>/dev/null; wait $pid 2>/dev/null || true
            echo "$tag: FAILED: no truth after ${GOMAP_CORE_TIMEOUT:-180}s"; return 1; fi
        sleep 0.1; waited=$((waited + 1))
    done
    kill -ABRT $pid
    wait $pid 2>/dev/null || true
    t2=$(date +%s.%N)
    local core
    if ! core=$(find_core "$dir" $pid); then
        echo "$tag: FAILED: no core file in $dir after SIGABRT (core_pattern '$(cat /proc/sys/kernel/core_pattern)', ulimit -c $(ulimit -c); see $log)"
        return 1
    fi
    [ "$core" = "$dir/core" ] || mv "$core" "$dir/core"
    local truth_impl
    truth_impl=$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); print(t["impl"], t["cgo"], t["pid"])' "$dir/truth.json")
    set -- $truth_impl
    [ "$1" = "$IMPL" ] || { echo "$tag: FAILED: fixture reports impl $1, expected $IMPL"; return 1; }
    [ "$2" = "$( $CGO && echo True || echo False)" ] || { echo "$tag: FAILED: fixture cgo=$2, expected $CGO"; return 1; }
    [ "$3" = "$pid" ] || { echo "$tag: FAILED: truth pid $3 is not the aborted process $pid"; return 1; }
    cat >"$dir/build.json" <<JSON
{"tag": "$tag", "go": $(json_str "$GO"), "go_version": "$gover", "impl": "$IMPL", "goexperiment": "$GOEXP",
 "pie": $PIE, "cgo": $CGO, "big": ${GOMAP_BIG:-1000000}, "pid": $pid}
JSON
    touch "$dir/.complete"
    printf '%s: ok %s impl=%s build %.1fs core %.1fs core=%s (sparse %s)\n' "$tag" "$gover" "$IMPL" \
        "$(awk "BEGIN{print $t1 - $t0}")" "$(awk "BEGIN{print $t2 - $t1}")" \
        "$(du -h --apparent-size "$dir/core" | cut -f1)" "$(du -h "$dir/core" | cut -f1)"
}

write_matrix() {
    python3 - "$FIXDIR" "${ALL_TAGS[@]}" <<'PY'
import json, os, sys
fixdir, tags = sys.argv[1], sys.argv[2:]
out = []
for tag in tags:
    d = os.path.join(fixdir, tag)
    if not os.path.exists(os.path.join(d, ".complete")):
        continue
    b = json.load(open(os.path.join(d, "build.json")))
    b.update({"dir": d, "binary": os.path.join(d, "maps"), "core": os.path.join(d, "core"),
              "truth": os.path.join(d, "truth.json"), "big_truth": os.path.join(d, "truth.json.big.json")})
    out.append(b)
tmp = os.path.join(fixdir, "matrix.json.tmp")
with open(tmp, "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
os.rename(tmp, os.path.join(fixdir, "matrix.json"))
PY
}

# ---- main ---------------------------------------------------------------------
if [ "${1:-}" = "--one" ]; then
    FIXDIR=$2; build_one "$3"; exit $?
fi

TAGS=("${ALL_TAGS[@]}")
while [ $# -gt 0 ]; do
    case $1 in
        --tags) IFS=, read -r -a TAGS <<<"$2"; shift 2 ;;
        --tags=*) IFS=, read -r -a TAGS <<<"${1#--tags=}"; shift ;;
        --list) printf '%s\n' "${ALL_TAGS[@]}"; exit 0 ;;
        --specs)  # what each tag is, without building anything (JSON lines)
            for t in "${ALL_TAGS[@]}"; do tag_spec "$t"
                printf '{"tag": "%s", "impl": "%s", "go": "%s", "goexperiment": "%s", "pie": %s, "cgo": %s}\n' \
                    "$t" "$IMPL" "$GO" "$GOEXP" "$PIE" "$CGO"; done; exit 0 ;;
        --dir) echo "$CACHE/fixtures/$(fixture_hash)"; exit 0 ;;  # where the current sources' fixtures live
        -h|--help) awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0"; exit 0 ;;
        *) die "unknown argument $1" ;;
    esac
done
for t in "${TAGS[@]}"; do tag_spec "$t"; done   # validate names early

check_core_pattern
"$ROOT/scripts/toolchains.sh"

HASH=$(fixture_hash)
FIXDIR="$CACHE/fixtures/$HASH"
mkdir -p "$FIXDIR" "$CACHE/gocache" "$CACHE/gopath"
export GOMAP_CACHE="$CACHE"

status=0
printf '%s\n' "${TAGS[@]}" | xargs -P "${GOMAP_JOBS:-2}" -I{} "$0" --one "$FIXDIR" {} || status=1
write_matrix
ln -sfn "$HASH" "$CACHE/fixtures/current.tmp" && mv -T "$CACHE/fixtures/current.tmp" "$CACHE/fixtures/current"
# Keep the newest ${GOMAP_KEEP:-2} fixture sets (each is ~0.7 GB of sparse cores).
for old in $( (ls -1dt "$CACHE/fixtures"/*/ 2>/dev/null || true) | sed 's:/$::' \
        | (grep -E '/[0-9a-f]{16}$' || true) | (grep -v "/$HASH\$" || true) | tail -n +"${GOMAP_KEEP:-2}"); do
    rm -rf -- "$old"
done
echo "fixtures: $FIXDIR (matrix.json; also $CACHE/fixtures/current)"
[ $status = 0 ] || die "some tags failed"
