"""sidecar/ is layered: a module imports only from its own package or the ones below it.

The order is the data's: the wire (`rpc`) at the bottom, then the worker side, the backend probe,
the front's state, the request inputs, the handlers, and at the top the modules that wire them
together. `synth` stands apart: only the command line's subcommands reach it, and it reaches nothing.
sidecar/README.md says what each package holds.
"""

from __future__ import annotations

import ast
from pathlib import Path

SIDECAR = Path(__file__).resolve().parent.parent / "sidecar"
LAYERS = ["rpc", "worker", "backend", "sources", "runtime", "inputs", "handlers", ""]  # "": sidecar/*.py, the top
APART = "synth"
# The command line's subcommands that write synthetic files: `synth-model`, and `selftest`, which
# upscales with a synthetic ESRGAN unless given one.
REACH_APART = {"sidecar.cli", "sidecar.backend.selftest"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SIDECAR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every sidecar module `path` imports, at module level or inside a function."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found |= {target} | {f"{target}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name.split(".")[0] == "sidecar" and _exists(name)}


def _exists(name: str) -> bool:
    path = SIDECAR.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def package_of(name: str) -> str:
    parts = name.split(".")
    if len(parts) == 1:
        return ""
    is_package = (SIDECAR.parent.joinpath(*parts) / "__init__.py").is_file()
    return parts[1] if len(parts) > 2 or is_package else ""


def test_every_package_of_sidecar_has_a_place_in_the_layers() -> None:
    packages = {p.name for p in SIDECAR.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(LAYERS[:-1]) | {APART}


def test_imports_only_go_down_the_layers() -> None:
    upward = []
    for path in sorted(SIDECAR.rglob("*.py")):
        mine = package_of(module_name(path))
        for target in sorted(imported(path)):
            theirs = package_of(target)
            if mine == APART or theirs == APART:
                allowed = theirs == mine or (theirs == APART and module_name(path) in REACH_APART)
            else:
                allowed = LAYERS.index(theirs) <= LAYERS.index(mine)
            if not allowed:
                upward.append(f"{module_name(path)} imports {target}")
    assert upward == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The walk above must find imports written the ways this code writes them, or it proves nothing."""
    handlers_import = imported(SIDECAR / "handlers" / "diffusion.py")
    assert {"sidecar.inputs.img2img", "sidecar.runtime.context", "sidecar.worker.messages"} <= handlers_import
    lazy = imported(SIDECAR / "cli.py")
    assert "sidecar.backend.selftest" in lazy and "sidecar.synth.kinds" in lazy
