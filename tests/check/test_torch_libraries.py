"""The real CUDA torch wheel (554 MB, its libraries' dynamic string tables at their ends, where
patchelf put them): the check names libcudnn.so.9 and the other CUDA libraries when nvidia-* is
removed, and finds nothing missing among torch's own libraries when only triton is."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from wheelpatch.check.elf import machine_of
from wheelpatch.check.native import (
    LibraryReport,
    check_files,
    member_paths,
    planned_exists,
    removed_requirements,
    system_search,
    wheel_objects,
)
from wheelpatch.patch.plan import PatchPlan, plan_patch
from wheelpatch.rules.config import load_config
from wheelpatch.wheel.source_wheel import read_wheel

pytestmark = pytest.mark.slow

TORCH = Path("/opt/pypi-more/files/torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl")
SITE = "/env/lib/python3.11/site-packages"
SCHEME = {"purelib": SITE, "platlib": SITE, "scripts": "/env/bin", "data": "/env",
          "headers": "/env/include/torch"}  # fmt: skip


def _check(tmp_path: Path, remove: str) -> tuple[list[str], LibraryReport, list[str]]:
    if not TORCH.is_file():
        pytest.fail(f"{TORCH} is missing: this test needs the real CUDA torch wheel")
    config_path = tmp_path / "pyproject.toml"
    config_path.write_text(
        f'[tool.wheelpatch]\nlocal-version = "t.1"\n[tool.wheelpatch.overrides.torch]\n'
        f"remove = [{remove}]\n",
        encoding="utf-8",
    )
    wheel = read_wheel(TORCH)
    plan = plan_patch(wheel, load_config(config_path))
    assert isinstance(plan, PatchPlan)
    target = machine_of(Path(sys.executable).resolve())
    assert target == ("EM_X86_64", 64)
    paths = member_paths(wheel, SCHEME)
    files = dataclasses.replace(
        wheel_objects(wheel, paths, target), removed=removed_requirements(plan.changes)
    )
    # An empty system: what this machine happens to have plays no part.
    report = check_files(
        [files], planned_exists(paths.values(), [SITE]), system_search(target, []), [SITE]
    )
    own = {o.path.rsplit("/", 1)[-1] for o in files.objects}
    own |= {o.facts.soname for o in files.objects if o.facts.soname}
    return [m.library for m, _ in report.missing], report, sorted(own)


def test_nvidia_removed_names_cudnn_and_the_other_cuda_libraries(tmp_path: Path) -> None:
    missing, report, own = _check(tmp_path, '"nvidia-*"')
    assert len(report.checked[0].objects) == 13
    for library in ("libcudnn.so.9", "libnccl.so.2", "libcusparseLt.so.0", "libnvshmem_host.so.3",
                    "libcublas.so.13", "libcudart.so.13"):  # fmt: skip
        assert library in missing
    providers = {m.library: p for m, p in report.missing}
    cudnn = providers["libcudnn.so.9"]
    assert cudnn is not None
    assert cudnn.how == "likely"
    assert cudnn.requirements == ('nvidia-cudnn-cu13==9.24.0.43; platform_system == "Linux"',)
    line = next(line for line in report.lines if line.startswith("libcudnn.so.9:"))
    assert "needed by torch 2.14.1: torch/lib/libtorch_cuda.so" in line
    assert "site-packages/nvidia/cudnn/lib" in line
    # torch's own libraries resolve through $ORIGIN: none is missing.
    assert not set(missing) & set(own)


def test_only_triton_removed_finds_nothing_missing_from_torch_itself(tmp_path: Path) -> None:
    missing, report, own = _check(tmp_path, '"triton"')
    assert "libc10.so" in own
    assert not set(missing) & set(own)
    # What is missing (the CUDA wheels are not part of this check, the driver's libcuda.so.1)
    # is not put on triton.
    assert all(p is None for _, p in report.missing)


def test_an_install_that_fails_does_not_wait_for_the_read(tmp_path: Path) -> None:
    """Ctrl-C (or pip failing) while the torch wheel is being read in the background: leaving
    the check stops the read at its next block instead of inflating 950 MB first."""
    import time

    from wheelpatch.install.environment import probe
    from wheelpatch.install.libraries import LibraryCheck
    from wheelpatch.install.resolve import Prepared

    if not TORCH.is_file():
        pytest.fail(f"{TORCH} is missing: this test needs the real CUDA torch wheel")
    config_path = tmp_path / "pyproject.toml"
    config_path.write_text(
        '[tool.wheelpatch]\nlocal-version = "t.1"\n[tool.wheelpatch.overrides.torch]\n'
        'remove = ["nvidia-*"]\n',
        encoding="utf-8",
    )
    wheel = read_wheel(TORCH)
    plan = plan_patch(wheel, load_config(config_path))
    env = probe(sys.executable, target=tmp_path / "target")
    check = LibraryCheck(env)
    check.start(Prepared(wheel, plan))
    time.sleep(0.1)  # the read is under way
    started = time.monotonic()
    check.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None)  # as a with block left by ^C
    elapsed = time.monotonic() - started
    assert elapsed < 0.5, f"leaving the check took {elapsed:.2f} s (the whole read: 1.5 s or more)"


def test_the_libraries_read_from_block_boundaries_read_as_inflated_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """torch's largest libraries have their dynamic segments 420 and 349 MB in: read from a
    deflate block boundary before them, the facts are those of inflating from the start."""
    import os

    from wheelpatch.check import elf
    from wheelpatch.wheel import deflate_tail
    from wheelpatch.wheel.archive import read_archive

    if not TORCH.is_file():
        pytest.fail(f"{TORCH} is missing: this test needs the real CUDA torch wheel")
    given: list[object] = []
    real = deflate_tail.inflate_range

    def spying(*args: object, **kwargs: object) -> object:
        found = real(*args, **kwargs)  # type: ignore[arg-type]
        given.append(found)
        return found

    fd = os.open(TORCH, os.O_RDONLY)
    try:
        members = {m.name: m for m in read_archive(fd, TORCH.name).members}
        names = [f"torch/lib/libtorch_{n}.so" for n in ("cuda", "cpu", "cuda_linalg")]
        with monkeypatch.context() as patched:
            patched.setattr(deflate_tail, "inflate_range", spying)
            fast = [elf.read_member_facts(fd, members[n], n) for n in names]
        assert len(given) == 3
        assert all(found is not None for found in given)
        with monkeypatch.context() as patched:
            patched.setattr(elf, "SEEK_AHEAD", 1 << 62)  # never: inflated from the start
            whole = [elf.read_member_facts(fd, members[n], n) for n in names]
    finally:
        os.close(fd)
    assert fast == whole
    assert "libcudnn.so.9" in whole[0][1].needed  # type: ignore[union-attr]
