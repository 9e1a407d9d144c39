"""What only the frozen binary does: point the binding at the native library it bundles.

The binary (build/launcher.c) unpacks its program once per build into a cache folder and then
becomes it, so the frozen program is the very process the host spawned, as with the Python
entry point: nothing to forward signals to, and nothing unpacked per launch to clean up.
"""

from __future__ import annotations

import os
import sys

# Where the spec puts the portable native library and its CPU variants inside the bundle.
BUNDLED_LIBRARY = ("native", "libstable-diffusion.so")


def use_bundled_library() -> None:
    """Point the binding at the bundled library; call before it is imported (in every process).

    A host that sets STABLE_DIFFUSION_CPP_LIB itself (say, to a GPU build) keeps its choice.
    """
    os.environ.setdefault("STABLE_DIFFUSION_CPP_LIB", os.path.join(sys._MEIPASS, *BUNDLED_LIBRARY))  # type: ignore[attr-defined]
