"""The frozen binary's main process lives and dies with the launcher the host spawned.

A onefile PyInstaller binary runs as two processes: the launcher (the pid the host knows: it
unpacks the bundle into a temporary folder, forwards signals, and removes the folder when its
child exits) and this process, which serves. A host that kills the launcher with SIGKILL would
leave this process serving on the host's pipes, with nobody left to remove the unpacked files.
So on Linux this process asks to be signalled when the launcher dies, then removes the folder
itself and ends at once, as if killed with it. Workers need none of this: they end when their
pipe closes.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import sys

_PR_SET_PDEATHSIG = 1
# Where the spec puts the portable native library and its CPU variants inside the bundle.
BUNDLED_LIBRARY = ("native", "libstable-diffusion.so")


def use_bundled_library() -> None:
    """Point the binding at the bundled library; call before it is imported (in every process).

    A host that sets STABLE_DIFFUSION_CPP_LIB itself (say, to a GPU build) keeps its choice.
    """
    os.environ.setdefault("STABLE_DIFFUSION_CPP_LIB", os.path.join(sys._MEIPASS, *BUNDLED_LIBRARY))  # type: ignore[attr-defined]


def follow_launcher() -> None:
    """Call first thing in the frozen main process (not in workers)."""
    if not sys.platform.startswith("linux"):  # parent-death signals are Linux-only
        return
    # A real-time signal: no host or terminal sends one, so it can only mean "the launcher is
    # gone", and like SIGKILL its default action ends the process.
    launcher_gone = signal.SIGRTMIN
    launcher = os.getppid()
    signal.signal(launcher_gone, _launcher_gone)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, launcher_gone) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    # The launcher may have died before the request took effect: then the parent is not it.
    if os.getppid() != launcher or not _same_program(launcher):
        _launcher_gone(launcher_gone, None)


def _same_program(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/exe") == os.readlink("/proc/self/exe")
    except OSError:
        return False


def _launcher_gone(signum: int, _frame: object) -> None:
    shutil.rmtree(sys._MEIPASS, ignore_errors=True)  # type: ignore[attr-defined]
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
