#!/usr/bin/env python3
"""Corruption corpus: damaged copies of real fixture cores (and bad binaries), each with what gomap
must say about it.

    scripts/corrupt.py --fixture DIR --out OUT [--gomap BIN]

DIR is one built fixture (scripts/fixtures.sh: DIR/maps, DIR/core, DIR/truth.json, DIR/build.json).
The cache originals are only read: every damaged file is a copy under OUT. Structure offsets come
from the engine's own discovery (`gomap layout --json`), addresses from the fixture's truth and
from the core itself; no layout is hard-coded here.

OUT/cases.json lists the cases:
  {"name", "binary", "core", "expr",
   "expect": "corrupt" | "error",
   "needle": text the corrupt finding or the error line must contain,
   "min_entries": entries that must still be shown (corrupt cases),
   "exact_entries": true when the entries must equal the fixture's truth,
   "value_level": true when only rendering values finds it (show does; check and maps read no values)}

Map corruptions (all in one damaged core per fixture; each hits a different map):
  classic: overflow-pointer cycle, B = 60, bucket array in unmapped memory, count far from the
           real number, tophash garbage, string length 2^40
  swiss:   dirLen out of range, globalDepth out of range, table pointer into unmapped memory,
           count far from the real number, ctrl garbage, string length 2^40, a table listed in two
           separate directory runs, impossible group count
File corruptions: truncated core, core of another binary, stripped binary (-ldflags=-s -w), a
non-Go ELF, an empty file (as binary and as core), a binary passed as the core.
"""

import argparse
import json
import os
import struct
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNMAPPED = 0xDEAD00000000  # no Go heap, binary or stack lives there


class Core:
    """A core file's PT_LOAD segments: read and patch bytes at virtual addresses (the copy only)."""

    def __init__(self, path, writable=False):
        self.f = open(path, "r+b" if writable else "rb")
        hdr = self.f.read(64)
        if hdr[:4] != b"\x7fELF" or hdr[4] != 2:
            raise SystemExit("%s: not a 64-bit ELF core" % path)
        phoff, = struct.unpack_from("<Q", hdr, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", hdr, 0x36)
        self.segs = []
        for i in range(phnum):
            self.f.seek(phoff + i * phentsize)
            ph = self.f.read(phentsize)
            p_type, = struct.unpack_from("<I", ph, 0)
            off, vaddr = struct.unpack_from("<QQ", ph, 8)
            filesz, = struct.unpack_from("<Q", ph, 32)
            if p_type == 1 and filesz:
                self.segs.append((vaddr, filesz, off))

    def _off(self, addr, n):
        for vaddr, filesz, off in self.segs:
            if vaddr <= addr and addr + n <= vaddr + filesz:
                return off + (addr - vaddr)
        raise KeyError("%#x+%d is not in the core" % (addr, n))

    def read(self, addr, n):
        self.f.seek(self._off(addr, n))
        return self.f.read(n)

    def u(self, addr, size):
        return int.from_bytes(self.read(addr, size), "little")

    def write(self, addr, data):
        self.f.seek(self._off(addr, len(data)))
        self.f.write(data)

    def put(self, addr, size, value):
        self.write(addr, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))

    def close(self):
        self.f.close()


def gomap_json(gomap, *args):
    p = subprocess.run([gomap, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=120)
    if p.returncode != 0:
        raise SystemExit("gomap %s: %s" % (" ".join(args), p.stderr.strip()))
    return json.loads(p.stdout)


def sparse_copy(src, dst, length=None):
    """Copies (a prefix of) a mostly-zero core without filling the holes."""
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        left = os.path.getsize(src) if length is None else length
        while left > 0:
            block = fi.read(min(left, 1 << 20))
            if not block:
                break
            if block.count(0) == len(block):
                fo.seek(len(block), 1)
            else:
                fo.write(block)
            left -= len(block)
        fo.truncate()


class Maker:
    def __init__(self, fixture, out, gomap):
        self.fx, self.out, self.gomap = fixture, out, gomap
        self.binary = os.path.join(fixture, "maps")
        self.truth = json.load(open(os.path.join(fixture, "truth.json")))
        self.impl = self.truth["impl"]
        layout = gomap_json(gomap, "layout", "--json", "--binary", self.binary, "--core", os.path.join(fixture, "core"))
        self.layouts = {m["type"]: m for m in layout["map_types"]}
        self.cases = []

    def header(self, expr):
        m = self.truth["maps"][expr]
        return int(m["address"], 16), self.layouts[m["type"]], m

    def case(self, name, expr, expect, needle, core=None, binary=None, min_entries=0, exact=False, value_level=False):
        self.cases.append({"name": name, "binary": binary or self.binary, "core": core, "expr": expr,
                           "expect": expect, "needle": needle, "min_entries": min_entries,
                           "exact_entries": exact, "value_level": value_level, "impl": self.impl})

    # ---- map corruptions ------------------------------------------------------------------------

    def classic(self, c, core):
        def f(lay, name):
            return lay["fields"][name]

        # Overflow-pointer cycle: intMap's bucket 0 gets an overflow bucket... which is itself.
        a, lay, _ = self.header("main.intMap")
        buckets = c.u(a + f(lay, "buckets")[0], 8)
        c.put(buckets + lay["overflow"][0], 8, buckets)
        self.case("overflow-cycle", "main.intMap", "corrupt", "loops back", core, min_entries=1)
        # A two-bucket cycle in a real chain: churnMap's last overflow bucket points to its head.
        a, lay, m = self.header("main.churnMap")
        buckets = c.u(a + f(lay, "buckets")[0], 8)
        bs, ov = lay["bucket_size"], lay["overflow"][0]
        for i in range(1 << m["facts"]["B"]):
            head = buckets + i * bs
            nxt = c.u(head + ov, 8)
            if nxt:
                last = nxt
                while c.u(last + ov, 8):
                    last = c.u(last + ov, 8)
                c.put(last + ov, 8, head)
                break
        self.case("overflow-chain-cycle", "main.churnMap", "corrupt", "loops back", core, min_entries=1)
        # B = 60.
        a, lay, _ = self.header("main.strMap")
        c.put(a + f(lay, "B")[0], 1, 60)
        self.case("B-60", "main.strMap", "corrupt", "impossible B = 60", core)
        # Bucket array pointer into unmapped memory.
        a, lay, _ = self.header("main.floatMap")
        c.put(a + f(lay, "buckets")[0], 8, UNMAPPED)
        self.case("buckets-unmapped", "main.floatMap", "corrupt", "unreadable", core)
        # Count far from the real number: every entry is still shown.
        a, lay, _ = self.header("main.litMap")
        c.put(a + f(lay, "count")[0], 8, 1000000)
        self.case("count-far", "main.litMap", "corrupt", "count says 1000000 entries but 5", core, min_entries=5, exact=True)
        # Tophash garbage in structMap's empty slots (its 3 live slots are kept): evacuation marks
        # in a map that is not growing, and one more "live" slot than the count.
        a, lay, _ = self.header("main.structMap")
        buckets = c.u(a + f(lay, "buckets")[0], 8)
        top = bytearray(c.read(buckets + lay["tophash"], 8))
        garbage = iter([0x02, 0x03, 0x04, 0xAA, 0x02, 0x03, 0x04, 0x02])
        c.write(buckets + lay["tophash"], bytes(b if b >= 5 else next(garbage) for b in top))
        self.case("tophash-garbage", "main.structMap", "corrupt", "carry evacuation marks", core, min_entries=3)
        self.case("tophash-garbage-count", "main.structMap", "corrupt", "count says 3 entries but 4", core, min_entries=3)
        # A string key of length 2^40: the entry is shown with an error for that key.
        self.string_len(c, core, "main.oneMap", lambda lay, a: c.u(a + f(lay, "buckets")[0], 8))

    def string_len(self, c, core, expr, first_group):
        a, lay, _ = self.header(expr)
        g = first_group(lay, a)
        ctrl_or_tophash = lay.get("ctrl", [lay.get("tophash", 0)])[0]
        states = c.read(g + ctrl_or_tophash, 8)
        live = [i for i, b in enumerate(states) if (b < 0x80 if self.impl == "swiss" else b >= 5)]
        slot = live[0]
        s = lay["slots"]
        key = g + s["key_base"] + slot * s["key_stride"]
        c.put(key + 8, 8, 1 << 40)  # string header {ptr, len}
        self.case("string-len-2^40", expr, "corrupt", "1099511627776", core, min_entries=1, value_level=True)

    def swiss(self, c, core):
        def f(lay, name):
            return lay["fields"][name]

        def tf(lay, name):
            return lay["table_fields"][name][0]

        # dirLen out of range.
        a, lay, _ = self.header("main.strMap")
        c.put(a + f(lay, "dirLen")[0], 8, 1 << 40)
        self.case("dirLen-out-of-range", "main.strMap", "corrupt", "impossible directory length 1099511627776", core)
        # globalDepth out of range (the directory has 1 entry).
        a, lay, _ = self.header("main.intMap")
        c.put(a + f(lay, "globalDepth")[0], 1, 77)
        self.case("globalDepth-out-of-range", "main.intMap", "corrupt", "global depth 77", core, min_entries=10, exact=True)
        # A table pointer into unmapped memory: the other 7 tables still give their entries.
        a, lay, m = self.header("main.growingMap")
        d = c.u(a + f(lay, "dirPtr")[0], 8)
        t0 = c.u(d, 8)
        for i in range(m["facts"]["dirLen"]):
            if c.u(d + 8 * i, 8) == t0:
                c.put(d + 8 * i, 8, UNMAPPED)
        self.case("table-unmapped", "main.growingMap", "corrupt", "table %#x is unreadable" % UNMAPPED, core, min_entries=1)
        # A table listed in two separate runs of the directory (never decoded twice).
        a, lay, m = self.header("main.tombMap")
        d = c.u(a + f(lay, "dirPtr")[0], 8)
        n = m["facts"]["dirLen"]
        first, last = c.u(d, 8), c.u(d + 8 * (n - 1), 8)
        if first != last:
            c.put(d + 8 * (n - 1), 8, first)
            self.case("table-in-two-runs", "main.tombMap", "corrupt", "appears in two separate runs", core, min_entries=1)
        # Impossible group count.
        a, lay, _ = self.header("main.churnMap")
        t = c.u(c.u(a + f(lay, "dirPtr")[0], 8), 8)
        c.put(t + tf(lay, "groups.lengthMask"), 8, (1 << 50) - 1)
        self.case("group-count", "main.churnMap", "corrupt", "impossible group count", core)
        # Count far from the real number.
        a, lay, _ = self.header("main.litMap")
        c.put(a + f(lay, "used")[0], 8, 1000000)
        self.case("count-far", "main.litMap", "corrupt", "used says 1000000 entries but 5", core, min_entries=5, exact=True)
        # ctrl garbage in the empty slots of a small map's group (its 3 full slots are kept).
        a, lay, _ = self.header("main.structMap")
        g = c.u(a + f(lay, "dirPtr")[0], 8)
        ctrl = bytearray(c.read(g + lay["ctrl"][0], 8))
        garbage = iter([0x9A, 0xC1, 0x81, 0xFD, 0x9A, 0xC1, 0x81, 0xFD])
        c.write(g + lay["ctrl"][0], bytes(b if b < 0x80 else next(garbage) for b in ctrl))
        self.case("ctrl-garbage", "main.structMap", "corrupt", "impossible control byte 0x9a", core, min_entries=3, exact=True)
        self.string_len(c, core, "main.oneMap", lambda lay, a: c.u(a + f(lay, "dirPtr")[0], 8))

    def maps(self):
        core = os.path.join(self.out, "maps-corrupt.core")
        sparse_copy(os.path.join(self.fx, "core"), core)
        c = Core(core, writable=True)
        (self.classic if self.impl == "classic" else self.swiss)(c, core)
        c.close()

    # ---- file corruptions -----------------------------------------------------------------------

    def files(self, other_fixture, go):
        real_core = os.path.join(self.fx, "core")
        trunc = os.path.join(self.out, "truncated.core")
        sparse_copy(real_core, trunc, os.path.getsize(real_core) * 6 // 10)
        self.case("truncated-core", "main.intMap", "error", "truncated", trunc)
        if other_fixture:
            self.case("core-of-another-binary", "main.intMap", "error", "does not belong to this binary",
                      os.path.join(other_fixture, "core"))
        empty = os.path.join(self.out, "empty")
        open(empty, "wb").close()
        self.case("empty-core", "main.intMap", "error", "not an ELF core file", empty)
        self.case("empty-binary", "main.intMap", "error", "not an executable", real_core, binary=empty)
        self.case("binary-as-core", "main.intMap", "error", "not a core dump", self.binary)
        self.case("core-as-binary", "main.intMap", "error", "is a core dump", real_core, binary=real_core)
        self.case("non-go-elf", "main.intMap", "error", "not a Go program", real_core, binary="/bin/true")
        if go:
            stripped = os.path.join(self.out, "maps-stripped")
            cache = os.environ.get("GOMAP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "gomap")
            env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="", GOENV="off", CGO_ENABLED="0",
                       GOCACHE=os.path.join(cache, "gocache"), GOPATH=os.path.join(cache, "gopath"),
                       GOMODCACHE=os.path.join(cache, "gopath", "pkg", "mod"))
            build = json.load(open(os.path.join(self.fx, "build.json")))
            if build.get("goexperiment"):
                env["GOEXPERIMENT"] = build["goexperiment"]
            r = subprocess.run([go, "build", "-trimpath", "-ldflags=-s -w", "-o", stripped, "."],
                               cwd=os.path.join(REPO, "fixtures", "maps"), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
            if r.returncode == 0:
                self.case("stripped-binary", "main.intMap", "error", "no DWARF", real_core, binary=stripped)
            else:
                print("corrupt.py: cannot build the stripped binary: %s" % r.stdout[-500:], file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fixture", required=True, help="a built fixture directory (maps, core, truth.json)")
    ap.add_argument("--other", help="another fixture directory, for the core-of-another-binary case")
    ap.add_argument("--go", help="go toolchain for the stripped-binary case (default: the fixture's, from build.json)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--gomap", default=os.environ.get("GOMAP_BIN", os.path.join(REPO, "target", "release", "gomap")))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    m = Maker(os.path.abspath(a.fixture), os.path.abspath(a.out), a.gomap)
    m.maps()
    go = a.go or json.load(open(os.path.join(a.fixture, "build.json"))).get("go")
    m.files(a.other and os.path.abspath(a.other), go)
    with open(os.path.join(a.out, "cases.json"), "w") as f:
        json.dump(m.cases, f, indent=1)
    print("%d cases in %s" % (len(m.cases), os.path.join(a.out, "cases.json")))


if __name__ == "__main__":
    main()
