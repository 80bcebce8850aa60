"""Exec a command under a seccomp filter that allows exactly the given syscalls.

Usage: python seccomp_exec.py ALLOWED_FILE -- command args...
Anything else kills the process (SIGSYS), like SystemCallFilter= with no ErrorNumber.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import pyseccomp


def main() -> None:
    allowed_file, sep, *command = sys.argv[1:]
    assert sep == "--" and command
    syscall_filter = pyseccomp.SyscallFilter(defaction=pyseccomp.KILL_PROCESS)
    for name in Path(allowed_file).read_text().split():
        with contextlib.suppress(ValueError, OSError):  # not a syscall of this architecture
            syscall_filter.add_rule(pyseccomp.ALLOW, name)
    syscall_filter.load()
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
