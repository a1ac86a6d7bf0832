"""Shared fixtures: a factory that builds wheels on the fly (RECORD computed, never hard-coded)
and a way to run the CLI in-process."""

from __future__ import annotations

import base64
import hashlib
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from wheelpatch.cli.wheelpatch import main

DATE = (2020, 2, 2, 12, 0, 0)


def record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class WheelSpec:
    """What to put in a test wheel. Everything has a small, valid default."""

    name: str = "demo"
    version: str = "1.0"
    build: str | None = None
    tag: str = "py3-none-any"
    files: dict[str, bytes] = field(
        default_factory=lambda: {"demo/__init__.py": b"VALUE = 1\n", "demo/core.py": b"x = 2\n"}
    )
    requires: Sequence[str] = ()
    requires_python: str | None = None
    extra_headers: Sequence[str] = ("Summary: A demo project",)
    body: str = "A long description.\n\nIt has two paragraphs.\n"
    #: Files under ``{name}-{version}.data/`` (keys like ``scripts/tool``).
    data: dict[str, bytes] = field(default_factory=dict)
    dist_info_position: Literal["first", "middle", "last"] = "last"
    dir_entries: bool = False
    compression: int = zipfile.ZIP_DEFLATED
    extra_dist_info: dict[str, bytes] = field(default_factory=dict)
    #: Extra members that RECORD does not list (for broken-wheel tests).
    unrecorded: dict[str, bytes] = field(default_factory=dict)
    metadata: bytes | None = None
    newline: str = "\n"

    @property
    def dist_name(self) -> str:
        return self.name.replace("-", "_").replace(".", "_")

    @property
    def dist_info(self) -> str:
        return f"{self.dist_name}-{self.version}.dist-info"

    @property
    def filename(self) -> str:
        build = f"-{self.build}" if self.build else ""
        return f"{self.dist_name}-{self.version}{build}-{self.tag}.whl"

    def metadata_bytes(self) -> bytes:
        if self.metadata is not None:
            return self.metadata
        lines = ["Metadata-Version: 2.1", f"Name: {self.name}", f"Version: {self.version}"]
        lines += list(self.extra_headers)
        if self.requires_python:
            lines.append(f"Requires-Python: {self.requires_python}")
        lines += [f"Requires-Dist: {r}" for r in self.requires]
        text = self.newline.join(lines) + self.newline
        if self.body:
            text += self.newline + self.body
        return text.encode()


def build_wheel(directory: Path, spec: WheelSpec | None = None, **changes: object) -> Path:
    """Write a wheel described by ``spec`` (or by keyword changes to the default) and return it."""
    spec = spec or WheelSpec()
    for key, value in changes.items():
        setattr(spec, key, value)
    dist_info = spec.dist_info
    payload: list[tuple[str, bytes]] = list(spec.files.items())
    payload += [(f"{spec.dist_name}-{spec.version}.data/{k}", v) for k, v in spec.data.items()]
    meta: list[tuple[str, bytes]] = [
        (f"{dist_info}/METADATA", spec.metadata_bytes()),
        (
            f"{dist_info}/WHEEL",
            f"Wheel-Version: 1.0\nGenerator: wheelpatch-tests\nRoot-Is-Purelib: true\n"
            f"Tag: {spec.tag}\n".encode(),
        ),
    ]
    meta += [(f"{dist_info}/{k}", v) for k, v in spec.extra_dist_info.items()]
    signatures = {f"{dist_info}/RECORD.jws", f"{dist_info}/RECORD.p7s"}
    record_rows = [
        f"{name},{record_hash(data)},{len(data)}"
        for name, data in payload + meta
        if name not in signatures
    ]
    record_rows.append(f"{dist_info}/RECORD,,")
    record = ("\n".join(record_rows) + "\n").encode()
    meta.append((f"{dist_info}/RECORD", record))
    if spec.dist_info_position == "first":
        members = meta + payload
    elif spec.dist_info_position == "middle":
        half = max(1, len(payload) // 2)
        members = payload[:half] + meta + payload[half:]
    else:
        members = payload + meta
    members += list(spec.unrecorded.items())
    path = directory / spec.filename
    written_dirs: set[str] = set()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members:
            if spec.dir_entries:
                parts = name.split("/")[:-1]
                for depth in range(1, len(parts) + 1):
                    directory_name = "/".join(parts[:depth]) + "/"
                    if directory_name not in written_dirs:
                        written_dirs.add(directory_name)
                        info = zipfile.ZipInfo(directory_name, DATE)
                        info.external_attr = (0o40755 << 16) | 0x10
                        info.create_system = 3
                        archive.writestr(info, b"")
            info = zipfile.ZipInfo(name, DATE)
            info.external_attr = 0o644 << 16
            info.create_system = 3
            info.compress_type = spec.compression
            archive.writestr(info, data)
    return path


@pytest.fixture
def make_wheel(tmp_path: Path) -> Callable[..., Path]:
    """``make_wheel(**changes)`` builds a wheel in ``tmp_path / "in"``."""
    source = tmp_path / "in"
    source.mkdir(exist_ok=True)

    def make(spec: WheelSpec | None = None, **changes: object) -> Path:
        return build_wheel(source, spec, **changes)

    return make


@pytest.fixture
def config_file(tmp_path: Path) -> Callable[[str], Path]:
    """``config_file(toml_text)`` writes a pyproject.toml and returns its path."""

    def write(text: str) -> Path:
        path = tmp_path / "pyproject.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``wheelpatch`` in-process: ``cli("patch", ...)``."""

    def run(*argv: str | Path) -> CliResult:
        capsys.readouterr()
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's --help / usage errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def settled_listing(directory: Path, timeout: float = 30) -> list[str]:
    """The names in ``directory`` once the replaced wheels that ``--force`` removes in the
    background (hidden names) are gone, or the timeout passed."""
    deadline = time.monotonic() + timeout
    while True:
        names = sorted(p.name for p in directory.iterdir())
        if not any(name.startswith(".") for name in names) or time.monotonic() > deadline:
            return names
        time.sleep(0.05)


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file below ``directory`` with its bytes (to prove nothing changed or appeared)."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }
