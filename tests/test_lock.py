"""requirements/*.lock pins every Python dependency, and the venv the tests run in is that lock.

A fresh clone resolved a newer msgspec than the one the committed schemas were generated with, and
a test went red with no commit in between: nothing was pinned. The Makefile now installs only from
the locks (hashes required, `pip check` after), so a green install on a clean clone is the proof that
the lock is complete; these tests keep the locks and the two pyproject.toml files in agreement.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "requirements"
LOCAL = {"diffusion-sidecar", "diffusion-sidecar-client"}  # this repository's own packages
_ENTRY = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)((?:[ \t]*\\\n[ \t]+--hash=\S+)*)", re.MULTILINE)


def pins(lock: str) -> dict[str, tuple[str, list[str]]]:
    text = (LOCKS / lock).read_text()
    return {
        canonicalize_name(name): (version, re.findall(r"--hash=(sha256:[0-9a-f]{64})", hashes))
        for name, version, hashes in _ENTRY.findall(text)
    }


def declared() -> list[Requirement]:
    """What both pyproject.toml files ask for: dependencies, every extra, and their build backends."""
    found = []
    for path in (ROOT / "pyproject.toml", ROOT / "host_clients" / "python" / "pyproject.toml"):
        project = tomllib.loads(path.read_text())
        found += project["build-system"]["requires"]
        found += project["project"]["dependencies"]
        for extra in project["project"].get("optional-dependencies", {}).values():
            found += extra
    return [Requirement(text) for text in found]


def test_every_declared_requirement_is_pinned_by_the_lock_within_its_range() -> None:
    locked = pins("all.lock")
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        if name in LOCAL:
            continue
        assert name in locked, f"{name} is declared but not locked: run `make lock`"
        version, _ = locked[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"all.lock pins {name}=={version}, outside the declared {requirement}: run `make lock`"
        )


@pytest.mark.parametrize("lock", ["build-tools.lock", "all.lock", "lock-tool.lock"])
def test_every_pin_carries_hashes_and_nothing_is_left_unpinned(lock: str) -> None:
    locked = pins(lock)
    assert locked
    assert all(hashes for _, hashes in locked.values()), "an entry without --hash: pip would refuse the lock"
    requirement_lines = [
        line for line in (LOCKS / lock).read_text().splitlines() if line and not line.startswith((" ", "#", "\t"))
    ]
    assert len(requirement_lines) == len(locked), "a line the lock holds that is not an exact pin"


def test_the_build_tools_installed_first_are_the_versions_the_full_lock_pins() -> None:
    full = pins("all.lock")
    for name, (version, _) in pins("build-tools.lock").items():
        assert full[name][0] == version, f"{name}: build-tools.lock and all.lock disagree"


def test_the_venv_running_the_tests_is_the_lock() -> None:
    """`make install` installs only from the locks: every locked package is there at its pin."""
    for name, (version, _) in pins("all.lock").items():
        assert importlib.metadata.version(name) == version, f"{name}: the venv differs from all.lock"


def test_the_native_build_downloads_the_sdist_the_lock_pins() -> None:
    sys.path.insert(0, str(ROOT / "build"))
    try:
        import native_library
    finally:
        sys.path.remove(str(ROOT / "build"))
    version, hashes = pins("all.lock")["stable-diffusion-cpp-python"]
    assert (native_library.VERSION, native_library.SDIST_HASHES) == (version, hashes)
