"""The wheel holds every package of the service: a non-editable install (the Dockerfile's `pip install .`) must
import what an editable checkout imports. A hand-kept package list once lost four sub-packages."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("monitor", "models", "simulators")


@pytest.mark.slow
def test_the_wheel_holds_every_module_of_the_shipped_packages(tmp_path: Path) -> None:
    # Built from a copy: setuptools reuses a checkout's build/ directory, whose old files would hide a missing one.
    source = tmp_path / "source"
    for top in SHIPPED:
        shutil.copytree(ROOT / top, source / top, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    built = subprocess.run([*command, str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("plantwatch-*.whl")
    in_wheel = {name for name in zipfile.ZipFile(wheel).namelist() if name.endswith(".py")}
    in_tree = {p.relative_to(ROOT).as_posix() for top in SHIPPED for p in (ROOT / top).rglob("*.py")}
    assert in_tree - in_wheel == set(), "modules missing from the wheel"
    assert {name.split("/")[0] for name in in_wheel} == set(SHIPPED), "only the service's packages are shipped"
