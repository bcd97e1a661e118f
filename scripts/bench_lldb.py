# Runs inside LLDB (`script exec(open("scripts/bench_lldb.py").read())`) for scripts/bench.py: the
# LLDB twin of bench_gdb.py. Times each command of the JSON job in $GOMAP_BENCH_GDB with Python's
# clocks inside LLDB (start-up and symbol loading excluded) and prints "BENCHRESULT {json}" lines.
import json
import os
import time

import lldb

_job = json.loads(os.environ["GOMAP_BENCH_GDB"])
_ci = lldb.debugger.GetCommandInterpreter()
for _cmd in _job["commands"]:
    _times, _cpu, _err, _out = [], [], None, ""
    for _ in range(_job.get("repeat", 1)):
        _res = lldb.SBCommandReturnObject()
        _t0, _c0 = time.perf_counter(), time.process_time()
        _ci.HandleCommand(_cmd, _res)
        _out = _res.GetOutput() or ""
        _times.append(time.perf_counter() - _t0)
        _cpu.append(time.process_time() - _c0)
        if not _res.Succeeded():
            _err = (_res.GetError() or "failed").strip().splitlines()[0]
            break
    print("BENCHRESULT " + json.dumps({
        "command": _cmd, "times": _times, "cpu": _cpu, "error": _err, "chars": len(_out),
        "count": _out.count(_job["count"]) if _job.get("count") else None, "head": _out[:300],
    }), flush=True)
