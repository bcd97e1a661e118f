"""gdb's own reading of the maps a Go program's package-level variables hold: the ground truth of
tests/test_census_thirdparty.py, taken without gomap (gdb reads the DWARF itself).

Run inside gdb in batch mode with the program and its core (or attached to it):

    GOMAP_GDB_OUT=out.json gdb -batch -nx -x tests/gdb_package_maps.py BINARY CORE

Every variable of `info variables` is looked up by name; a variable whose DWARF type is a Go map
(gdb's type name `map[K]V`, a pointer to the runtime's header) gives the header address and its
element count (the header's `count` field in classic maps, `used` in swiss ones: gdb reads both from
the runtime's DWARF). Struct-typed variables are searched for map fields too, inline only (no pointer
is followed), a few levels deep, so `pkg.v.f.m` is named as Go would write it. Writes JSON:
{"maps": [{"name", "address", "len", "type"}], "variables": N, "errors": [...]}.

With GOMAP_GDB_VARS=NAME,NAME only those variables are searched (no `info variables`).
With GOMAP_GDB_HEADERS=FILE (a JSON list of "0x..." addresses, e.g. every map another tool found),
also "headers": {address: len}, each read as the runtime's header type (`runtime.hmap`, or
`internal/runtime/maps.Map` for swiss maps) at that address.
"""

import json
import os
import gdb  # noqa: F401  (provided by gdb)

MAX_DEPTH = 4
MAX_ARRAY = 64


def variable_names():
    """Names of every variable with debug info, from `info variables` (the last word of each line)."""
    text = gdb.execute("info variables", to_string=True)
    names = []
    for line in text.splitlines():
        if line.startswith("Non-debugging symbols"):
            break
        line = line.strip()
        if not line.endswith(";") or line.startswith("File "):
            continue
        names.append(line[:-1].split()[-1])
    return names


def strip(t):
    while t.code == gdb.TYPE_CODE_TYPEDEF:
        t = t.target()
    return t


def is_map(t):
    return (t.name or "").startswith("map[") and strip(t).code == gdb.TYPE_CODE_PTR


def header_len(hdr):
    """The element count of a map header (classic `count`, swiss `used`)."""
    names = [f.name for f in strip(hdr.type).fields()]
    for field in ("count", "used"):
        if field in names:
            return int(hdr[field])
    raise ValueError("map header %s has neither count nor used: %s" % (hdr.type, names))


def search(name, v, depth, out, errors):
    t = v.type
    if is_map(t):
        addr = int(v)
        if addr:
            try:
                out.append({"name": name, "address": "0x%x" % addr, "len": header_len(v.dereference()),
                            "type": t.name})
            except (gdb.error, gdb.MemoryError, ValueError) as e:
                errors.append("%s: %s" % (name, e))
        return
    if depth >= MAX_DEPTH:
        return
    s = strip(t)
    if s.code == gdb.TYPE_CODE_STRUCT:
        # Go's own layout structs (strings, slices, interfaces) hold no map inline.
        for f in s.fields():
            if f.name is None or f.bitpos is None or f.is_base_class:
                continue
            search("%s.%s" % (name, f.name), v[f], depth + 1, out, errors)
    elif s.code == gdb.TYPE_CODE_ARRAY:
        lo, hi = s.range()
        for i in range(lo, min(hi, lo + MAX_ARRAY - 1) + 1):
            search("%s[%d]" % (name, i), v[i], depth + 1, out, errors)


def header_lens(addresses, errors):
    """The element count of the map header at each address, read as the runtime's own header type
    (`runtime.hmap`, or `internal/runtime/maps.Map` for swiss maps)."""
    hdr = None
    for name in ("runtime.hmap", "internal/runtime/maps.Map"):
        try:
            hdr = gdb.lookup_type(name)
            break
        except gdb.error:
            continue
    if hdr is None:
        errors.append("no runtime.hmap or internal/runtime/maps.Map type in the DWARF")
        return {}
    out = {}
    ptr = hdr.pointer()
    for a in addresses:
        try:
            out[a] = header_len(gdb.Value(int(a, 16)).cast(ptr).dereference())
        except (gdb.error, gdb.MemoryError, ValueError) as e:
            errors.append("%s: %s" % (a, e))
    return out


def main():
    out, errors, n = [], [], 0
    only = [v for v in os.environ.get("GOMAP_GDB_VARS", "").split(",") if v]
    for name in only or variable_names():
        sym = gdb.lookup_global_symbol(name) or gdb.lookup_static_symbol(name)
        if sym is None or not sym.is_variable:
            continue
        n += 1
        try:
            search(name, sym.value(), 0, out, errors)
        except (gdb.error, gdb.MemoryError) as e:
            errors.append("%s: %s" % (name, e))
    doc = {"maps": out, "variables": n, "errors": errors}
    if os.environ.get("GOMAP_GDB_HEADERS"):
        with open(os.environ["GOMAP_GDB_HEADERS"]) as f:
            doc["headers"] = header_lens(json.load(f), errors)
    with open(os.environ["GOMAP_GDB_OUT"], "w") as f:
        json.dump(doc, f)


main()
