"""Process hardening the daemon applies to itself, whatever unit or shell started it.

A core dump of the daemon would write the RAM audio buffer (and transcript text) to disk, which
the product promises never happens: the soft and hard core size limits go to 0 (so no child can
raise them back) and the process is made non-dumpable, which also covers a core_pattern pipe
(systemd-coredump, apport) that ignores the size limit, and keeps other users' ptrace away.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


def _prctl(option: int, arg: int = 0) -> int:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    result = libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0)
    if result < 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")
    return int(result)


def disable_core_dumps() -> None:
    """RLIMIT_CORE 0/0 and PR_SET_DUMPABLE 0; raises OSError if the kernel refuses."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _prctl(PR_SET_DUMPABLE, 0)


def core_dumps_disabled() -> bool:
    """Read back from the kernel: True when this process can write no core dump."""
    return resource.getrlimit(resource.RLIMIT_CORE) == (0, 0) and _prctl(PR_GET_DUMPABLE) == 0
