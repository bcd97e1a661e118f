# Runs inside gdb (`python exec(open("scripts/bench_gdb.py").read())`) for scripts/bench.py: times
# debugger commands with gdb's own clock, so gdb start-up and symbol loading are not counted.
# Reads a JSON job from $GOMAP_BENCH_GDB: {"commands": [...], "repeat": N, "count": "needle"}
# and prints one line "BENCHRESULT {json}" per command.
import json
import os
import time

import gdb

_job = json.loads(os.environ["GOMAP_BENCH_GDB"])
for _cmd in _job["commands"]:
    _times, _cpu, _err, _out = [], [], None, ""
    for _ in range(_job.get("repeat", 1)):
        _t0, _c0 = time.perf_counter(), time.process_time()
        try:
            _out = gdb.execute(_cmd, to_string=True)
        except Exception as e:  # report what the command did, whatever it was
            _err = str(e).splitlines()[0] if str(e) else type(e).__name__
            _out = ""
        # process_time: CPU of the whole gdb process, gomap's worker threads included.
        _times.append(time.perf_counter() - _t0)
        _cpu.append(time.process_time() - _c0)
        if _err:
            break
    print("BENCHRESULT " + json.dumps({
        "command": _cmd, "times": _times, "cpu": _cpu, "error": _err, "chars": len(_out),
        "count": _out.count(_job["count"]) if _job.get("count") else None,
        "head": _out[:300],
        # A pretty-printer that fails half-way leaves gdb's marker in the output instead of an error.
        "inner_error": (_out.split("<error reading variable", 1)[1].split(">", 1)[0].strip(": ")
                        if "<error reading variable" in _out else None),
    }), flush=True)
