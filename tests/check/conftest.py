"""Tiny shared libraries compiled with gcc, and wheels shipping them, shared by the check tests.

- ``provider`` ships ``provider/lib/libfoo.so`` (SONAME libfoo.so);
- ``consumer`` requires ``provider``; its extension ``consumer/_ext.so`` needs libfoo.so through
  its RUNPATH ``$ORIGIN/../provider/lib``, and ``consumer/_ext_rpath.so`` through an RPATH;
- ``foo-runtime`` is another distribution shipping a libfoo.so in the same place.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..conftest import WheelSpec, build_wheel

CONFIG = """\
[tool.wheelpatch]
local-version = "nolib.1"

[tool.wheelpatch.overrides.consumer]
remove = ["provider"]
"""


@dataclass(frozen=True)
class Native:
    directory: Path
    libfoo: Path
    ext_runpath: Path
    ext_rpath: Path
    #: A directory holding only libfoo.so, to stand for a system library directory.
    system_dir: Path
    provider: Path
    consumer: Path
    foo_runtime: Path
    config: Path
    #: ``big.so``: a library whose dynamic segment lies past the first 4 MB.
    big: Path
    #: ``far.so``: 6 MiB of random bytes (incompressible: stored deflate blocks) before its
    #: dynamic segment.
    far: Path


def _gcc(*argv: str | Path, cwd: Path) -> None:
    gcc = shutil.which("gcc")
    assert gcc is not None, "these tests need gcc (the CI machine has it)"
    subprocess.run([gcc, *map(str, argv)], cwd=cwd, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def native(tmp_path_factory: pytest.TempPathFactory) -> Native:
    root = tmp_path_factory.mktemp("native")
    (root / "foo.c").write_text("int foo(void) { return 42; }\n")
    (root / "ext.c").write_text("int foo(void);\nint ext(void) { return foo() + 1; }\n")
    # 8 MiB of constant data before the dynamic segment (it compresses to almost nothing).
    (root / "big.c").write_text(
        "const char big[8 << 20] = {1};\nint foo(void);\nint use(void) { return big[0] + foo(); }\n"
    )
    _gcc("-shared", "-fPIC", "-Wl,-soname,libfoo.so", "-o", "libfoo.so", "foo.c", cwd=root)
    origin = "-Wl,-rpath,$ORIGIN/../provider/lib"
    _gcc("-shared", "-fPIC", "-o", "ext_runpath.so", "ext.c", "-L.", "-lfoo", origin,
         "-Wl,--enable-new-dtags", cwd=root)  # fmt: skip
    _gcc("-shared", "-fPIC", "-o", "ext_rpath.so", "ext.c", "-L.", "-lfoo", origin,
         "-Wl,--disable-new-dtags", cwd=root)  # fmt: skip
    _gcc("-shared", "-fPIC", "-o", "big.so", "big.c", "-L.", "-lfoo", origin,
         "-Wl,--enable-new-dtags", cwd=root)  # fmt: skip
    (root / "blob.bin").write_bytes(random.Random(6).randbytes(6 << 20))
    (root / "blob.s").write_text(
        '.section .rodata\n.globl blob\n.type blob, @object\nblob:\n.incbin "blob.bin"\n'
        ".size blob, .-blob\n"
    )
    (root / "far.c").write_text(
        "extern const char blob[];\nint foo(void);\nint use(void) { return blob[0] + foo(); }\n"
    )
    _gcc("-shared", "-fPIC", "-o", "far.so", "far.c", "blob.s", "-L.", "-lfoo", origin,
         "-Wl,--enable-new-dtags", cwd=root)  # fmt: skip
    system_dir = root / "system"
    system_dir.mkdir()
    shutil.copy(root / "libfoo.so", system_dir / "libfoo.so")
    wheels = root / "wheels"
    wheels.mkdir()
    libfoo = (root / "libfoo.so").read_bytes()
    provider = build_wheel(
        wheels,
        WheelSpec(
            name="provider",
            version="1.0",
            files={"provider/__init__.py": b"", "provider/lib/libfoo.so": libfoo},
        ),
    )
    consumer = build_wheel(
        wheels,
        WheelSpec(
            name="consumer",
            version="1.0",
            requires=("provider",),
            files={
                "consumer/__init__.py": b"",
                "consumer/_ext.so": (root / "ext_runpath.so").read_bytes(),
                "consumer/_ext_rpath.so": (root / "ext_rpath.so").read_bytes(),
            },
        ),
    )
    foo_runtime = build_wheel(
        wheels,
        WheelSpec(
            name="foo-runtime",
            version="2.0",
            files={"provider/lib/libfoo.so": libfoo, "foo_runtime/__init__.py": b""},
        ),
    )
    config = root / "pyproject.toml"
    config.write_text(CONFIG, encoding="utf-8")
    return Native(
        directory=root,
        libfoo=root / "libfoo.so",
        ext_runpath=root / "ext_runpath.so",
        ext_rpath=root / "ext_rpath.so",
        system_dir=system_dir,
        provider=provider,
        consumer=consumer,
        foo_runtime=foo_runtime,
        config=config,
        big=root / "big.so",
        far=root / "far.so",
    )
