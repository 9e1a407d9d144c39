"""Where the sidecar is: an explicit command, else `DIFFUSION_SIDECAR`, else `diffusion-sidecar` on PATH."""

from __future__ import annotations

import os
import shutil
import sysconfig
from collections.abc import Mapping

ENV_VAR = "DIFFUSION_SIDECAR"
COMMAND_NAME = "diffusion-sidecar"


class SidecarNotFound(FileNotFoundError):
    """No sidecar executable was found; `tried` lists every place looked at, in order."""

    def __init__(self, tried: list[str]) -> None:
        super().__init__(
            "diffusion-sidecar was not found. Tried: " + "; ".join(tried) + ". Pass the command to "
            f"start(), set {ENV_VAR} to the executable's path, or put {COMMAND_NAME} on PATH."
        )
        self.tried = tried


def default_command(env: Mapping[str, str] | None = None) -> list[str]:
    """The sidecar to spawn when the host names none, looked up in `env` (default: this process's).

    1. `DIFFUSION_SIDECAR`: the executable's path (the frozen binary, or a script; a bare name is
       looked up on PATH), without arguments; when set, it must name one, and nothing else is tried.
    2. `diffusion-sidecar` on PATH.
    3. `diffusion-sidecar` in this Python environment's scripts folder, where `pip install
       diffusion-sidecar` puts it even when the environment is not activated.
    """
    env = os.environ if env is None else env
    search_path = env.get("PATH", os.defpath)
    explicit = env.get(ENV_VAR)
    if explicit:
        # A set variable that names nothing runnable is a mistake to report, not a reason to run
        # some other sidecar found further on.
        found = shutil.which(explicit, path=search_path)
        if found is None:
            raise SidecarNotFound([f"{ENV_VAR}={explicit} (not an executable file)"])
        return [os.path.abspath(found)]
    tried = [f"{ENV_VAR} (not set)"]
    if found := shutil.which(COMMAND_NAME, path=search_path):
        return [found]
    tried.append(f"{COMMAND_NAME} on PATH ({search_path})")
    scripts = sysconfig.get_path("scripts")
    if found := shutil.which(COMMAND_NAME, path=scripts):
        return [found]
    tried.append(f"{COMMAND_NAME} in this Python environment's scripts folder ({scripts})")
    raise SidecarNotFound(tried)
