"""Faults while writing: kill -9, Ctrl-C, a full disk, a read-only directory, concurrent runs.

Each fault is real: the CLI runs as a child process that is signalled, limited by
RLIMIT_FSIZE, or given a tmpfs mounted (inside a user namespace) full or read-only.
"""

from __future__ import annotations

import base64
import hashlib
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from wheelpatch.wheel.verify import verify_wheel

from ..conftest import WheelSpec, build_wheel, settled_listing

pytestmark = pytest.mark.slow

CONFIG = '[tool.wheelpatch]\nlocal-version = "f1"\n[tool.wheelpatch.overrides.big]\n'
OUTPUT = "big-1.0+f1-py3-none-any.whl"


def sparse_wheel(directory: Path, size: int) -> Path:
    """A valid wheel with one stored member of ``size`` zero bytes, written sparse (instantly)."""
    zeros = bytes(1 << 22)
    crc = 0
    digest = hashlib.sha256()
    for _ in range(size // len(zeros)):
        crc = zlib.crc32(zeros, crc)
        digest.update(zeros)
    blob_name = b"big/blob.bin"
    small = build_wheel(directory, WheelSpec(name="big", files={"big/__init__.py": b""}))
    # Take the small wheel's members, add the blob first and its row to RECORD.
    with zipfile.ZipFile(small) as archive:
        members = [(i, archive.read(i)) for i in archive.infolist()]
    small.unlink()
    path = directory / "big-1.0-py3-none-any.whl"
    encoded = base64url(digest.digest())
    central = []
    with path.open("wb") as out:
        offset = 0
        out.write(_local(blob_name, 0, crc, size, size))
        out.seek(offset + 30 + len(blob_name) + size)
        central.append(_central(blob_name, 0, crc, size, size, offset))
        for info, data in members:
            if info.filename.endswith("RECORD"):
                data = data.replace(
                    b"big-1.0.dist-info/RECORD,,",
                    f"big/blob.bin,sha256={encoded},{size}\n".encode()
                    + b"big-1.0.dist-info/RECORD,,",
                )
            name = info.filename.encode()
            offset = out.tell()
            crc_m = zlib.crc32(data)
            out.write(_local(name, 0, crc_m, len(data), len(data)) + data)
            central.append(_central(name, 0, crc_m, len(data), len(data), offset))
        cd_offset = out.tell()
        cd = b"".join(central)
        out.write(cd)
        out.write(
            struct.pack(
                "<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(central), len(central), len(cd), cd_offset, 0
            )
        )
    return path


def base64url(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _local(name: bytes, method: int, crc: int, csize: int, usize: int) -> bytes:
    return (
        struct.pack(
            "<4sHHHHHIIIHH",
            b"PK\x03\x04",
            20,
            0,
            method,
            0,
            0x5021,
            crc,
            csize,
            usize,
            len(name),
            0,
        )
        + name
    )


def _central(name: bytes, method: int, crc: int, csize: int, usize: int, offset: int) -> bytes:
    return (
        struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            0x031E,
            20,
            0,
            method,
            0,
            0x5021,
            crc,
            csize,
            usize,
            len(name),
            0,
            0,
            0,
            0,
            0o644 << 16,
            offset,
        )
        + name
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("faults")
    (directory / "pyproject.toml").write_text(CONFIG)
    (directory / "in").mkdir()
    sparse_wheel(directory / "in", 384 << 20)
    return directory


def patch_cmd(workdir: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "wheelpatch",
        "patch",
        "--config",
        str(workdir / "pyproject.toml"),
        "-o",
        str(out),
        *extra,
        str(workdir / "in" / "big-1.0-py3-none-any.whl"),
    ]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.0005)
    return False


#: Runs the command it is given with SIGINT's default action, as a terminal gives it: a test run
#: started in the background by a shell without job control inherits SIGINT ignored, and
#: Python then leaves it ignored.
_WITH_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def test_ctrl_c_cleans_up_and_exits_130(workdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", _WITH_SIGINT, *patch_cmd(workdir, out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert wait_for(lambda: bool(leftovers(out))), "the run never started writing"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err == "error: interrupted\n"
    assert list(out.iterdir()) == []


def test_sigkill_never_leaves_a_partial_output(workdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    started = time.monotonic()
    subprocess.run(patch_cmd(workdir, out), check=True, capture_output=True)
    duration = time.monotonic() - started
    complete = (out / OUTPUT).read_bytes()
    (out / OUTPUT).unlink()
    outcomes = set()
    for step in range(10):
        delay = duration * step / 8
        process = subprocess.Popen(
            patch_cmd(workdir, out, "--force"), stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        time.sleep(delay)
        process.kill()
        process.wait()
        target = out / OUTPUT
        if target.exists():
            # Only ever a complete wheel under the final name, byte-identical to a full run.
            assert target.read_bytes() == complete, f"partial output after kill at {delay:.3f}s"
            outcomes.add("complete")
        else:
            outcomes.add("absent")
    # The next run sweeps what killed runs left behind (once it is clearly abandoned).
    for name in leftovers(out):
        os.utime(out / name, (time.time() - 60, time.time() - 60))
    subprocess.run(patch_cmd(workdir, out, "--force"), check=True, capture_output=True)
    # (The wheel this run replaced is removed in the background, after it exits.)
    assert wait_for(lambda: leftovers(out) == []), leftovers(out)
    assert (out / OUTPUT).read_bytes() == complete
    assert outcomes  # at least one kill landed


def test_full_disk_via_rlimit_fsize(workdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, 8 << 20))

    result = subprocess.run(
        patch_cmd(workdir, out), capture_output=True, text=True, preexec_fn=limit, check=False
    )
    assert result.returncode == 3, result.stderr
    assert result.stderr == f"error: {out / OUTPUT}: cannot write (File too large)\n"
    assert list(out.iterdir()) == []


def _in_namespace(script: str) -> subprocess.CompletedProcess[str]:
    unshare = shutil.which("unshare")
    assert unshare is not None, "unshare (util-linux) is needed for the tmpfs fault tests"
    return subprocess.run(
        [unshare, "--map-root-user", "--mount", "sh", "-c", script],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param("size=4m", "cannot write (No space left on device)", id="full-tmpfs"),
        pytest.param("ro", "cannot create a file there (Read-only file system)", id="read-only"),
    ],
)
def test_tmpfs_faults(workdir: Path, tmp_path: Path, options: str, message: str) -> None:
    out = tmp_path / "mnt"
    out.mkdir()
    command = " ".join(f"'{part}'" for part in patch_cmd(workdir, out))
    result = _in_namespace(
        f"mount -t tmpfs -o {options} tmpfs '{out}' && {command}; code=$?; "
        f"ls -a '{out}' >&2; exit $code"
    )
    assert result.returncode == 3, result.stderr
    lines = result.stderr.splitlines()
    expected = (
        f"error: {out / OUTPUT}: {message}" if "write" in message else (f"error: {out}: {message}")
    )
    assert lines[0] == expected
    assert lines[1:] == [".", ".."]  # nothing left in the mount


@pytest.mark.parametrize("force", [True, False], ids=["force", "no-force"])
def test_eight_concurrent_runs_leave_one_valid_wheel(
    tmp_path: Path, config_file: Callable[[str], Path], force: bool
) -> None:
    config = config_file(
        '[tool.wheelpatch]\nlocal-version = "c8"\n[tool.wheelpatch.overrides.demo]\n'
    )
    files = {f"demo/m{i}.bin": os.urandom(1 << 20) for i in range(24)}
    source = build_wheel(tmp_path, WheelSpec(files=files))
    out = tmp_path / "out"
    out.mkdir()
    argv = [sys.executable, "-m", "wheelpatch", "patch", "--config", str(config), "-o", str(out)]
    if force:
        argv.append("--force")
    processes = [
        subprocess.Popen(
            [*argv, str(source)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in processes]
    for process in processes:
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    codes = [code for code, _ in results]
    if force:
        assert codes == [0] * 8, results
    else:
        assert codes.count(0) >= 1, results
        assert all(code == 0 or (code == 3 and "already exists" in err) for code, err in results), (
            results
        )
    # --force removes each replaced wheel in the background, after the command returns.
    assert settled_listing(out) == ["demo-1.0+c8-py3-none-any.whl"]
    assert verify_wheel(out / "demo-1.0+c8-py3-none-any.whl").ok
