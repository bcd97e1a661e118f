#!/usr/bin/env bash
# Coverage-guided fuzzing of gomap (cargo-fuzz / libFuzzer with AddressSanitizer).
#
#   scripts/fuzz.sh --smoke              every target for a few seconds on its seeds and past crashes
#                                        (not the grown corpus; part of scripts/test.sh)
#   scripts/fuzz.sh --seconds 600        the long run: each target for 10 minutes, one at a time
#   scripts/fuzz.sh --seconds 60 core    chosen targets only (binary, core, decode_classic, decode_swiss,
#                                        decode_any: every tag's layout and fixtures/hostile;
#                                        heap: the heap index on hostile span tables;
#                                        frames: goroutine stack walk, unwinder, locals, stack maps;
#                                        frames_dwarf: the same readers built from mutated DWARF)
#
# Seeds come from the real fixtures (scripts/fixtures.sh; tags go1.23 and go1.26) and are written,
# with the growing corpora, crash artifacts and logs, under ${GOMAP_CACHE:-~/.cache/gomap}/fuzz.
# Nothing large is written to the repository. cargo-fuzz is installed into the cache on first use;
# it runs on the stable toolchain with RUSTC_BOOTSTRAP=1 (it needs -Z flags). Targets are built
# optimised with debug assertions (integer overflow panics, so wrapping arithmetic on hostile
# values is found) and without AddressSanitizer (the engine is safe Rust apart from mmap; ASan cost
# 5-10x in speed for nothing it could find): FUZZ_FLAGS overrides, e.g. FUZZ_FLAGS="-O -a".
# A crash prints the artifact's path and exits 1: copy the artifact to fuzz/regressions/TARGET/,
# where `cargo test` (tests/fuzz_regressions.rs) replays it, and fix the bug.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
export GOMAP_CACHE="${GOMAP_CACHE:-$HOME/.cache/gomap}"
FUZZ="$GOMAP_CACHE/fuzz"
SECONDS_PER=600
TARGETS=()
SMOKE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SECONDS_PER=7; SMOKE=1; shift ;;
        --seconds) SECONDS_PER="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) TARGETS+=("$1"); shift ;;
    esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(binary core decode_classic decode_swiss decode_any heap frames frames_dwarf)
FIX="$GOMAP_CACHE/fixtures/current"
for tag in go1.23 go1.26; do
    if [ ! -f "$FIX/$tag/core" ]; then
        echo "fuzz.sh: no fixture $FIX/$tag (the seeds and the decoders' map types come from it): run scripts/fixtures.sh --tags go1.23,go1.26" >&2
        exit 2
    fi
done

# cargo-fuzz, cached.
TOOLS="$GOMAP_CACHE/tools"
export PATH="$TOOLS/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz into $TOOLS (once)" >&2
    nice -n 10 cargo install --quiet --locked --root "$TOOLS" cargo-fuzz >&2
fi
export RUSTC_BOOTSTRAP=1
read -r -a FLAGS <<< "${FUZZ_FLAGS:--O -a -s none}"

mkdir -p "$FUZZ"/{seeds,corpus,artifacts,logs}
echo "== building fuzz targets and the seed extractor" >&2
(cd fuzz && nice -n 10 cargo fuzz build "${FLAGS[@]}" >&2)
(cd fuzz/seed && CARGO_TARGET_DIR="$REPO/fuzz/target/seed" nice -n 10 cargo build --quiet --release >&2)

# Seeds, rebuilt when the fixtures change.
STAMP="$FUZZ/seeds/.fixtures"
if [ "$(readlink -f "$FIX")" != "$(cat "$STAMP" 2>/dev/null)" ]; then
    rm -rf "$FUZZ/seeds"/*
    mkdir -p "$FUZZ/seeds"/{binary,core,decode_classic,decode_swiss}
    SEED="$REPO/fuzz/target/seed/release/gomap-fuzz-seed"
    "$SEED" "$FIX/go1.23/maps" "$FIX/go1.23/core" "$FUZZ/seeds/decode_classic" 2>/dev/null
    if [ -f "$FIX/go1.24-noswissmap/core" ]; then
        # Same map types by name, a different header layout (clearSeq): more shapes for the fuzzer.
        "$SEED" "$FIX/go1.24-noswissmap/maps" "$FIX/go1.24-noswissmap/core" "$FUZZ/seeds/decode_classic.noswiss" 2>/dev/null || true
    fi
    "$SEED" "$FIX/go1.26/maps" "$FIX/go1.26/core" "$FUZZ/seeds/decode_swiss" 2>/dev/null
    # Executables: only the sections discovery reads, DWARF decompressed so that mutations reach
    # the DWARF parser instead of dying in zlib; plus a non-Go ELF and an empty file.
    for tag in go1.23 go1.26 go1.27-mapsplitgroup; do
        [ -f "$FIX/$tag/maps" ] || continue
        objcopy --decompress-debug-sections -R .text -R .rodata -R .typelink -R .itablink -R .gopclntab \
            -R .noptrdata -R .data -R .debug_line -R .debug_frame -R .debug_loc -R .debug_loclists \
            -R .debug_ranges -R .debug_rnglists -R .debug_gdb_scripts -R .note.go.buildid \
            "$FIX/$tag/maps" "$FUZZ/seeds/binary/$tag" 2>/dev/null || true
    done
    cp /bin/true "$FUZZ/seeds/binary/non-go-elf"
    : > "$FUZZ/seeds/binary/empty"
    # Cores: the real headers and notes (NT_FILE, auxv) with every PT_LOAD cut to a few bytes.
    for tag in go1.23 go1.26 go1.26-pie; do
        [ -f "$FIX/$tag/core" ] || continue
        python3 - "$FIX/$tag/core" "$FUZZ/seeds/core/$tag" <<'PY'
import struct, sys
src, dst = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
phoff, = struct.unpack_from("<Q", data, 0x20)
phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
hdr = bytearray(data[:64])
struct.pack_into("<QHHH", hdr, 0x28, 0, 64, phentsize, 0)  # no section headers
struct.pack_into("<Q", hdr, 0x20, 64)
phdrs, blobs = [], []
at = 64 + phentsize * phnum
for i in range(phnum):
    ph = bytearray(data[phoff + i * phentsize: phoff + (i + 1) * phentsize])
    p_type, = struct.unpack_from("<I", ph, 0)
    off, filesz = struct.unpack_from("<Q", ph, 8)[0], struct.unpack_from("<Q", ph, 32)[0]
    keep = filesz if p_type == 4 else min(filesz, 4096 if not blobs else 64)
    blob = data[off: off + keep]
    struct.pack_into("<Q", ph, 8, at)
    struct.pack_into("<Q", ph, 32, len(blob))
    phdrs.append(bytes(ph)); blobs.append(blob); at += len(blob)
open(dst, "wb").write(bytes(hdr) + b"".join(phdrs) + b"".join(blobs))
PY
    done
    readlink -f "$FIX" > "$STAMP"
fi

# decode_any: the layouts of every built tag (sorted, as the harness loads them), then the hostile
# values program (fixtures/hostile, built and cored once through tests/fixturelib.py). Each seed is
# the seed tool's output for that fixture with the fixture's index byte in front.
HOSTILE=$("$GOMAP_CACHE/venv/bin/python" -c 'import sys; sys.path.insert(0, "tests"); import fixturelib as F; p = F.program_core("hostile", "go1.26"); print(p["binary"], p["core"])' 2>/dev/null || true)
if [ -n "$HOSTILE" ]; then
    export GOMAP_FUZZ_HOSTILE_BIN="${HOSTILE%% *}"
fi
if [ ! -f "$FUZZ/seeds/decode_any/.done" ]; then
    rm -rf "$FUZZ/seeds/decode_any" && mkdir -p "$FUZZ/seeds/decode_any"
    SEED="$REPO/fuzz/target/seed/release/gomap-fuzz-seed"
    i=0
    pairs=()
    for d in $(ls -d "$FIX"/*/ | sort); do
        [ -f "$d/maps" ] && pairs+=("$d/maps $d/core")
    done
    [ -n "$HOSTILE" ] && pairs+=("$HOSTILE")
    for pair in "${pairs[@]}"; do
        read -r bin core <<< "$pair"
        tmp=$(mktemp -d)
        "$SEED" "$bin" "$core" "$tmp" 2>/dev/null || true
        for f in "$tmp"/*; do
            [ -f "$f" ] || continue
            { printf "\\x$(printf %02x "$i")"; cat "$f"; } > "$FUZZ/seeds/decode_any/$i-$(basename "$f")"
        done
        rm -rf "$tmp"
        i=$((i + 1))
    done
    touch "$FUZZ/seeds/decode_any/.done"
fi

# heap: a well-formed span table in heap::fuzz's layout (mheap_ at BASE: allspans pointer, length,
# pagesInUse; then the pointer array; then 40-byte mspans), so mutations start from a valid index.
if [ ! -f "$FUZZ/seeds/heap/valid" ]; then
    mkdir -p "$FUZZ/seeds/heap"
    python3 - "$FUZZ/seeds/heap/valid" <<'PY'
import struct, sys
BASE, n = 0x10000, 4
arr, spans = BASE + 64, BASE + 64 + 8 * n
out = bytearray(struct.pack("<QQQ", arr, n, 7).ljust(64, b"\0"))
out += b"".join(struct.pack("<Q", spans + 40 * i) for i in range(n))
for i, (npages, nelems, elemsize, cls, state) in enumerate([(1, 512, 16, 4, 1), (1, 85, 96, 20, 1), (4, 1, 32768, 0, 1), (1, 0, 0, 0, 0)]):
    out += struct.pack("<QQHxxxxxxQBB", 0x100000 + i * 0x10000, npages, nelems, elemsize, cls, state).ljust(40, b"\0")
open(sys.argv[1], "wb").write(out)
PY
fi

# frames: the bytes the goroutine walk reads from the go1.26 core (allgs, each g with its saved
# SP/PC, the stacks, firstmoduledata, the pclntab's stack maps). frames_dwarf: the go1.23 and
# go1.26 executables cut to the DWARF the unwinder and the locals reader parse (decompressed).
if [ ! -f "$FUZZ/seeds/frames/.done" ] || [ ! -f "$FUZZ/seeds/frames_dwarf/.done" ]; then
    rm -rf "$FUZZ/seeds/frames" "$FUZZ/seeds/frames_dwarf" && mkdir -p "$FUZZ/seeds/frames" "$FUZZ/seeds/frames_dwarf"
    tmp=$(mktemp -d)
    "$REPO/fuzz/target/seed/release/gomap-fuzz-seed" --frames "$FIX/go1.26/maps" "$FIX/go1.26/core" "$tmp" 2>/dev/null \
        && cp "$tmp/all" "$FUZZ/seeds/frames/memory-go1.26"
    for tag in go1.23 go1.26; do
        objcopy --decompress-debug-sections $(for s in info abbrev str frame loc loclists ranges rnglists addr str_offsets line_str; do
            printf -- '--only-section=.debug_%s ' "$s"; done) "$FIX/$tag/maps" "$tmp/$tag.elf" 2>/dev/null || continue
        cp "$tmp/$tag.elf" "$FUZZ/seeds/frames_dwarf/$tag"
    done
    rm -rf "$tmp"
    touch "$FUZZ/seeds/frames/.done" "$FUZZ/seeds/frames_dwarf/.done"
fi

status=0
printf '%-16s %8s %12s %10s %8s  %s\n' target seconds execs exec/s corpus result
for t in "${TARGETS[@]}"; do
    mkdir -p "$FUZZ/corpus/$t" "$FUZZ/artifacts/$t"
    seeds=("$FUZZ/seeds/$t")
    # Past crashes are replayed first (with debug assertions: overflow regressions show here).
    [ -d "fuzz/regressions/$t" ] && seeds+=("$REPO/fuzz/regressions/$t")
    maxlen=1048576
    case "$t" in
        decode_classic) [ -d "$FUZZ/seeds/decode_classic.noswiss" ] && seeds+=("$FUZZ/seeds/decode_classic.noswiss") ;;
        binary|frames_dwarf) maxlen=4194304 ;;
        # The seed is 25 KB; images grown to 1 MB only made each execution slower.
        frames) maxlen=131072 ;;
    esac
    log="$FUZZ/logs/$t.log"
    # The smoke replays the seeds and past crashes into a scratch corpus: replaying the grown corpus
    # took decode_any 135 s (2,100 inputs of up to 1 MB) and would keep growing with the cache.
    corpus="$FUZZ/corpus/$t"
    if [ "$SMOKE" = 1 ]; then
        corpus=$(mktemp -d)
    fi
    t0=$(date +%s)
    # -timeout: one input may take at most 10 s (a hang is a bug: every loop is capped).
    # -rss_limit_mb / -malloc_limit_mb: an allocation over 2 GiB is a bug (reads are capped at 256 MiB).
    if (cd fuzz && nice -n 10 cargo fuzz run "${FLAGS[@]}" "$t" "$corpus" "${seeds[@]}" -- \
            -max_total_time="$SECONDS_PER" -timeout=10 -rss_limit_mb=3072 -malloc_limit_mb=2048 \
            -max_len="$maxlen" -print_final_stats=1 -artifact_prefix="$FUZZ/artifacts/$t/" >"$log" 2>&1); then
        result=ok
    else
        result="CRASH: $(ls -t "$FUZZ/artifacts/$t" | head -1) (see $log)"
        status=1
    fi
    took=$(( $(date +%s) - t0 ))
    [ "$SMOKE" = 1 ] && rm -rf "$corpus"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    corpus=$(ls "$FUZZ/corpus/$t" | wc -l)
    # seconds: wall time of the run, including the build check and loading the seeds.
    printf '%-16s %8s %12s %10s %8s  %s\n' "$t" "$took" "${execs:-?}" "${rate:-?}" "$corpus" "$result"
    echo "$(date -u +%FT%TZ) $t seconds=$took (asked $SECONDS_PER) execs=${execs:-?} exec_per_sec=${rate:-?} corpus=$corpus flags=${FLAGS[*]} result=$result" >> "$FUZZ/history.log"
done
exit $status
