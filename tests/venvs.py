"""Fresh virtual environments for the tests that install into one: made without pip (fast)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .hermetic import hermetic_env

__all__ = ["PY", "Venv", "make_venv"]

PY = f"python{sys.version_info.major}.{sys.version_info.minor}"
V = TypeVar("V", bound="Venv")


@dataclass(frozen=True)
class Venv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def site(self) -> Path:
        return self.root / "lib" / PY / "site-packages"

    def paths(self) -> dict[str, str]:
        """The venv interpreter's sysconfig paths, as it reports them."""
        done = subprocess.run(
            [self.python, "-c", "import json, sysconfig; print(json.dumps(sysconfig.get_paths()))"],
            capture_output=True, text=True, check=True, env=hermetic_env(), timeout=60,
        )  # fmt: skip
        paths: dict[str, str] = json.loads(done.stdout)
        return paths

    def dist_infos(self) -> list[str]:
        return sorted(p.name for p in self.site.iterdir() if p.name.endswith(".dist-info"))

    def dist_info(self, name: str, version: str) -> Path:
        path = self.site / f"{name}-{version}.dist-info"
        assert path.is_dir(), f"{path.name} not in {self.dist_infos()}"
        return path


def make_venv(root: Path, kind: type[V] = Venv) -> V:  # type: ignore[assignment]
    """``python -m venv --without-pip root``, checked to have its site-packages and no pip."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", root],
        check=True, capture_output=True, env=hermetic_env(), timeout=120,
    )  # fmt: skip
    venv = kind(root)
    assert venv.site.is_dir(), f"unexpected venv layout under {root}"
    assert not (venv.bin / "pip").exists()
    return venv
