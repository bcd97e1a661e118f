"""gomap, as installed by pip: the `gomap` command and the gdb and LLDB front ends.

The `gomap` command is the Rust command line itself (`_gomap.cli_main`, the function src/main.rs
runs), so it behaves exactly as a `cargo install`ed gomap. The front ends next to this file
(gomap.py for gdb, gomap_lldb.py for LLDB) are loaded by the debugger's own Python through the
absolute path that `gomap init gdb|lldb` prints, and find `_gomap` beside them.
"""

import os
import signal
import sys


def main():
    try:
        from gomap import _gomap
    except ImportError as e:  # a damaged install: one line, the CLI's error status, no traceback
        sys.stderr.write("gomap: error: cannot load the gomap native module (%s); reinstall gomap "
                         "(pip install --force-reinstall)\n" % e)
        sys.exit(2)
    # The command runs in Rust without returning to Python: Ctrl-C must stop it the way it stops
    # the Rust binary, not wait for a KeyboardInterrupt that would only be raised at the end.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(_gomap.cli_main(sys.argv, os.path.dirname(os.path.abspath(__file__))))
