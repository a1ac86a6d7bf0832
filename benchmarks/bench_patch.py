"""Benchmark ``wheelpatch patch`` against ``cp``, ``wheel unpack`` + ``wheel pack`` and
``editwheel edit`` on large wheels.

What it measures
    For each wheel, the same edit (local version label ``stripe.2``; drop the ``triton``,
    ``nvidia-*`` and ``cuda-*`` requirements) is made by:

    * ``cp``          -- copying the file: the floor for any tool that rewrites it;
    * ``wheelpatch``  -- ``wheelpatch patch --config PYPROJECT -o OUT --force WHEEL``;
    * ``editwheel``   -- ``editwheel edit WHEEL --version V --set-requires-dist ... -o OUT/``
                         (a Rust tool that also copies unchanged members as raw compressed
                         bytes);
    * ``unpack+pack`` -- ``wheel unpack``, rename the ``.dist-info``, edit METADATA, then
                         ``wheel pack``: one child process running all three steps.

    Every command is a child process, forked by a small launcher (``python -I -S -c``) that
    times it with ``time.perf_counter`` and reaps it with ``os.wait4``: peak RSS is that
    ``ru_maxrss``, on Linux the largest of the child and of every descendant it waited for (so
    the ``unpack+pack`` figure is the largest of its steps). The launcher exists because a child
    forked straight from this script would inherit its peak RSS as a floor (see _LAUNCHER);
    the launcher's own floor is about 6 MiB, which only shows for ``cp``.

    Each tool runs once untimed first (so every tool sees a warm page cache; its output is
    checked then), then the timed runs are interleaved round-robin in a rotating order. Outputs
    are deleted, and dirty pages synced, between runs, outside the timed region.

Wheels
    * a synthetic ``bigdemo-1.0-py3-none-any.whl`` (>= 500 MB, > 10,000 members: deflated
      text-like modules, stored and deflated random blobs), built once into ``--cache-dir``;
    * real wheels from ``--wheel PATH`` and ``$WHEELPATCH_BENCH_WHEEL`` (paths separated by
      ``os.pathsep``); when neither is given, the largest ``torch-*.whl`` found through pip's
      configuration (``find-links`` directories, ``file://`` index URLs).

Targets
    ``wheelpatch`` at most 0.75x ``editwheel``'s median time, at least 30x faster than
    ``unpack+pack``, peak RSS at most 100 MiB. A missed target prints ``MISS``; the exit status is
    still 0 (this is a report, not a test).

Run (from the repository root, in an environment with ``pip install -e .[bench]``)::

    python benchmarks/bench_patch.py                   # synthetic + discovered torch, 5 repeats
    python benchmarks/bench_patch.py --repeat 1 --skip-unpack-pack --no-synthetic
    python benchmarks/bench_patch.py --wheel path/to/big.whl --json
"""

from __future__ import annotations

import argparse
import email.parser
import fnmatch
import hashlib
import io
import json
import os
import platform
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
from base64 import urlsafe_b64encode
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LABEL = "stripe.2"
REMOVE = ("triton", "nvidia-*", "cuda-*")
ENV_WHEELS = "WHEELPATCH_BENCH_WHEEL"
DEFAULT_CACHE = Path(__file__).resolve().parent / ".cache"
UNPACK_PACK_HELPER = "_unpack-pack"

TARGET_VS_EDITWHEEL = 0.75
TARGET_VS_UNPACK_PACK = 30.0
TARGET_RSS_MIB = 100.0

# Bump when the synthetic wheel's recipe changes: the cache is keyed by it.
SYNTHETIC_KEY = "v1"
SYNTHETIC_NAME = "bigdemo"
SYNTHETIC_VERSION = "1.0"
SYNTHETIC_SEED = 20240501
SYNTHETIC_TEXT_PACKAGES = 100
SYNTHETIC_TEXT_MODULES = 100  # per package: 10,000 text members
SYNTHETIC_SMALL_BLOBS = 200  # 64 KiB random, stored
SYNTHETIC_LARGE_BLOBS = 24  # 16-32 MiB random, alternately stored and deflated (level 1)
SYNTHETIC_REQUIRES = (
    "numpy>=1.24",
    "packaging>=23",
    'typing-extensions>=4.10; python_version < "3.12"',
    'triton==3.0.0; platform_system == "Linux"',
    "nvidia-cublas==13.0",
    'nvidia-cudnn-cu13==9.24.0.43; platform_system == "Linux"',
    "cuda-bindings>=13.0.3",
    'rich>=13; extra == "cli"',
)
_ZIP_DATE = (2024, 5, 1, 0, 0, 0)

# Each measured command is the child of this small launcher (`python -I -S -c`), which forks it,
# times it with perf_counter and reaps it with os.wait4, then prints "seconds maxrss status".
# Why not Popen + wait4 here directly: Linux's ru_maxrss of a child starts at the RSS of the memory
# it was forked (or vforked) from, so every figure would be at least this script's own peak
# (hundreds of MiB after building the synthetic wheel). The launcher's floor is ~6 MiB.
_LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.dup2(2, 1)
        os.execvp(sys.argv[1], sys.argv[1:])
    except OSError as exc:
        os.write(2, f"cannot run {sys.argv[1]}: {exc}\\n".encode())
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""
_MIB = 1024 * 1024


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class WheelInfo:
    path: Path
    kind: str  # "synthetic" or "real"
    project: str
    version: str
    requires_dist: tuple[str, ...]
    members: int
    size: int

    @property
    def new_version(self) -> str:
        sep = "." if "+" in self.version else "+"
        return f"{self.version}{sep}{LABEL}"

    @property
    def kept_requires(self) -> tuple[str, ...]:
        return tuple(r for r in self.requires_dist if not _is_removed(r, REMOVE))


@dataclass(frozen=True)
class Sample:
    seconds: float
    rss_kib: int | None


@dataclass
class Tool:
    name: str
    argv: list[str]
    out_dir: Path
    runs: int
    scratch: Path | None = None
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None

    @property
    def active(self) -> bool:
        return self.error is None


class ToolFailed(Exception):
    pass


# --------------------------------------------------------------------------- helpers


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return _canonical(match.group(1)) if match else ""


def _is_removed(requirement: str, patterns: Sequence[str]) -> bool:
    name = _requirement_name(requirement)
    return any(fnmatch.fnmatchcase(name, _canonical(p)) for p in patterns)


def _find_exe(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def _mib(kib: float | None) -> float | None:
    return None if kib is None else kib / 1024


def _record_hash(data: bytes) -> str:
    digest = urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- synthetic wheel


def _text_corpus(rng: random.Random, size: int) -> str:
    """Python-looking text that deflates about 3-5x, like real modules."""
    words = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz_", k=rng.randint(3, 10)))
        for _ in range(400)
    ]
    lines: list[str] = []
    length = 0
    n = 0
    while length < size:
        a, b, c = rng.choices(words, k=3)
        line = (
            f"def {a}_{n}({b}, {c}=None):\n"
            f'    """Return {a} of {b} and {c}."""\n'
            f"    return {b} * {n % 97} + ({c} or {rng.randint(0, 9999)})  # {a} {b}\n\n"
        )
        lines.append(line)
        length += len(line)
        n += 1
    return "".join(lines)


def _synthetic_members(rng: random.Random) -> Iterator[tuple[str, bytes, int]]:
    """(archive path, content, compress type) for the package part, in archive order."""
    corpus = _text_corpus(rng, 1 << 20)
    yield f"{SYNTHETIC_NAME}/__init__.py", b'__version__ = "1.0"\n', zipfile.ZIP_DEFLATED
    for p in range(SYNTHETIC_TEXT_PACKAGES):
        for m in range(SYNTHETIC_TEXT_MODULES):
            size = rng.randint(2 << 10, 24 << 10)
            start = rng.randrange(0, len(corpus) - size)
            text = f"# {SYNTHETIC_NAME}.pkg{p:03d}.mod{m:03d}\n" + corpus[start : start + size]
            path = f"{SYNTHETIC_NAME}/pkg{p:03d}/mod{m:03d}.py"
            yield path, text.encode(), zipfile.ZIP_DEFLATED
    for i in range(SYNTHETIC_SMALL_BLOBS):
        yield f"{SYNTHETIC_NAME}/data/blob{i:03d}.bin", rng.randbytes(64 << 10), zipfile.ZIP_STORED
    for i in range(SYNTHETIC_LARGE_BLOBS):
        kind = zipfile.ZIP_STORED if i % 2 else zipfile.ZIP_DEFLATED
        data = rng.randbytes(rng.randint(16, 32) * _MIB)
        yield f"{SYNTHETIC_NAME}/lib/libblob{i:02d}.so", data, kind


def _synthetic_dist_info() -> list[tuple[str, bytes]]:
    dist_info = f"{SYNTHETIC_NAME}-{SYNTHETIC_VERSION}.dist-info"
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {SYNTHETIC_NAME}",
        f"Version: {SYNTHETIC_VERSION}",
        "Summary: Synthetic wheel for benchmarking wheelpatch",
        "Requires-Python: >=3.9",
        *(f"Requires-Dist: {r}" for r in SYNTHETIC_REQUIRES),
        "Provides-Extra: cli",
        "",
        "A synthetic wheel: large, many members, compressible and incompressible.",
        "",
    ]
    wheel = [
        "Wheel-Version: 1.0",
        "Generator: bench_patch.py",
        "Root-Is-Purelib: true",
        "Tag: py3-none-any",
        "",
    ]
    return [
        (f"{dist_info}/METADATA", "\n".join(metadata).encode()),
        (f"{dist_info}/WHEEL", "\n".join(wheel).encode()),
        (f"{dist_info}/top_level.txt", f"{SYNTHETIC_NAME}\n".encode()),
    ]


def _zip_info(path: str, compress_type: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(path, date_time=_ZIP_DATE)
    info.compress_type = compress_type
    info.external_attr = 0o100644 << 16
    return info


def _write_synthetic(target: Path) -> None:
    rng = random.Random(SYNTHETIC_SEED)
    record: list[str] = []
    dist_info = f"{SYNTHETIC_NAME}-{SYNTHETIC_VERSION}.dist-info"
    with zipfile.ZipFile(target, "w") as archive:
        for path, data, kind in _synthetic_members(rng):
            archive.writestr(_zip_info(path, kind), data, compresslevel=1)
            record.append(f"{path},{_record_hash(data)},{len(data)}")
        for path, data in _synthetic_dist_info():
            archive.writestr(_zip_info(path, zipfile.ZIP_DEFLATED), data, compresslevel=1)
            record.append(f"{path},{_record_hash(data)},{len(data)}")
        record.append(f"{dist_info}/RECORD,,")
        body = ("\n".join(record) + "\n").encode()
        archive.writestr(_zip_info(f"{dist_info}/RECORD", zipfile.ZIP_DEFLATED), body)


def synthetic_wheel(cache_dir: Path) -> Path:
    """The synthetic wheel, built into ``cache_dir`` the first time (keyed by SYNTHETIC_KEY)."""
    directory = cache_dir / f"synthetic-{SYNTHETIC_KEY}"
    target = directory / f"{SYNTHETIC_NAME}-{SYNTHETIC_VERSION}-py3-none-any.whl"
    if target.is_file():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    _log(f"building the synthetic wheel {target} (once) ...")
    start = time.perf_counter()
    partial = target.with_suffix(".partial")
    try:
        _write_synthetic(partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    _log(f"built in {time.perf_counter() - start:.1f} s")
    return target


# --------------------------------------------------------------------------- real wheels


def _pip_config_values() -> list[tuple[str, str]]:
    """(option, value) pairs from ``pip config list``; empty if pip is unavailable."""
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    pairs: list[tuple[str, str]] = []
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        option = key.rsplit(".", 1)[-1]
        for item in value.strip().strip("'\"").split():
            pairs.append((option, item))
    return pairs


def _to_path(location: str) -> Path | None:
    if location.startswith("file:"):
        return Path(urllib.request.url2pathname(urllib.parse.urlparse(location).path))
    if "://" in location:
        return None
    return Path(location).expanduser()


def _wheels_linked_from(page: Path, pattern: str) -> list[Path]:
    try:
        html = page.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    found: list[Path] = []
    for href in re.findall(r'href="([^"#]+)', html):
        path = _to_path(urllib.parse.urljoin(page.as_uri(), href))
        if path is not None and fnmatch.fnmatch(path.name, pattern) and path.is_file():
            found.append(path)
    return found


def _candidates_in_index(simple: Path, project: str, pattern: str) -> list[Path]:
    """Wheels of ``project`` in a local PEP 503 index: its page's links and a sibling files/."""
    found = _wheels_linked_from(simple / project / "index.html", pattern)
    for directory in (simple / project, simple.parent / "files"):
        if directory.is_dir():
            found.extend(directory.glob(pattern))
    return found


def discover_wheels(project: str = "torch") -> list[Path]:
    """Every ``{project}-*.whl`` reachable through pip's find-links and file:// indexes."""
    pattern = f"{project}-*.whl"
    found: set[Path] = set()
    for option, value in _pip_config_values():
        path = _to_path(value)
        if path is None:
            continue
        if option == "find-links":
            if path.is_dir():
                found.update(path.glob(pattern))
            elif path.is_file():
                found.update(_wheels_linked_from(path, pattern))
        elif option in ("index-url", "extra-index-url") and path.is_dir():
            found.update(_candidates_in_index(path, project, pattern))
    return sorted(p.resolve() for p in found if p.is_file())


def explicit_wheels(cli_wheels: Sequence[Path]) -> list[Path]:
    env = [Path(p) for p in os.environ.get(ENV_WHEELS, "").split(os.pathsep) if p]
    return [*env, *cli_wheels]


def read_wheel_info(path: Path, kind: str) -> WheelInfo:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        headers = email.parser.BytesHeaderParser().parsebytes(archive.read(metadata))
    return WheelInfo(
        path=path,
        kind=kind,
        project=str(headers["Name"]),
        version=str(headers["Version"]),
        requires_dist=tuple(str(r) for r in headers.get_all("Requires-Dist") or ()),
        members=len(names),
        size=path.stat().st_size,
    )


# --------------------------------------------------------------------------- unpack + pack


def _edit_metadata(text: str, new_version: str, patterns: Sequence[str]) -> str:
    head, sep, body = text.partition("\n\n")
    lines: list[str] = []
    for line in head.split("\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == "version":
            line = f"Version: {new_version}"
        elif key.strip().lower() == "requires-dist" and _is_removed(value, patterns):
            continue
        lines.append(line)
    return "\n".join(lines) + sep + body


def _edit_unpacked(root: Path, new_version: str, patterns: Sequence[str]) -> None:
    (dist_info,) = root.glob("*.dist-info")
    stem = dist_info.name.removesuffix(".dist-info")
    name = stem.rpartition("-")[0]
    metadata = dist_info / "METADATA"
    text = metadata.read_bytes().decode("utf-8")
    metadata.write_bytes(_edit_metadata(text, new_version, patterns).encode("utf-8"))
    dist_info.rename(root / f"{name}-{new_version}.dist-info")
    data = root / f"{stem}.data"
    if data.is_dir():
        data.rename(root / f"{name}-{new_version}.data")


def unpack_pack_main(argv: Sequence[str]) -> int:
    """The ``unpack+pack`` child: ``wheel unpack``, edit, ``wheel pack``, in one process."""
    parser = argparse.ArgumentParser(prog=f"bench_patch.py {UNPACK_PACK_HELPER}")
    parser.add_argument("wheel_exe")
    parser.add_argument("wheel", type=Path)
    parser.add_argument("scratch", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("new_version")
    parser.add_argument("remove", nargs="*")
    args = parser.parse_args(argv)
    subprocess.run([args.wheel_exe, "unpack", "-d", str(args.scratch), str(args.wheel)], check=True)
    (root,) = (p for p in args.scratch.iterdir() if p.is_dir())
    _edit_unpacked(root, args.new_version, args.remove)
    subprocess.run([args.wheel_exe, "pack", "-d", str(args.out_dir), str(root)], check=True)
    return 0


# --------------------------------------------------------------------------- measuring


def _maxrss_kib(value: int) -> int:
    return value // 1024 if sys.platform == "darwin" else value  # macOS reports bytes


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_measured(argv: Sequence[str], log: Path) -> Sample:
    """Run ``argv`` through the lean launcher: its wall time and peak RSS (or a descendant's)."""
    if not (hasattr(os, "fork") and hasattr(os, "wait4")):  # pragma: no cover - Windows
        return _run_plain(argv, log)
    launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, *argv]
    with log.open("wb") as sink:
        result = subprocess.run(
            launcher, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=sink, check=False
        )
    fields = result.stdout.split()
    if result.returncode != 0 or len(fields) != 3:
        raise ToolFailed(f"launcher failed: {shlex.join(argv)}\n{_tail(log)}")
    seconds, maxrss, status = float(fields[0]), int(fields[1]), int(fields[2])
    if status != 0:
        raise ToolFailed(f"exit status {status}: {shlex.join(argv)}\n{_tail(log)}")
    return Sample(seconds, _maxrss_kib(maxrss))


def _run_plain(argv: Sequence[str], log: Path) -> Sample:  # pragma: no cover - Windows
    with log.open("wb") as sink:
        start = time.perf_counter()
        status = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, check=False
        ).returncode
        seconds = time.perf_counter() - start
    if status != 0:
        raise ToolFailed(f"exit status {status}: {shlex.join(argv)}\n{_tail(log)}")
    return Sample(seconds, None)


def _reset(tool: Tool) -> None:
    """Delete a tool's output (and scratch), outside the timed region."""
    for directory in (tool.out_dir, tool.scratch):
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
    if hasattr(os, "sync"):
        os.sync()  # do not let one run's write-back land in the next run's time


def _run_once(tool: Tool, log: Path) -> Sample | None:
    _reset(tool)
    try:
        return run_measured(tool.argv, log)
    except (ToolFailed, OSError) as exc:
        tool.error = str(exc)
        _log(f"  {tool.name} FAILED, dropped: {exc}")
        return None


def run_rounds(tools: list[Tool], repeat: int, work: Path, label: str) -> None:
    """Timed runs, round-robin: each round runs every tool once, the order rotating."""
    for round_no in range(repeat):
        shift = round_no % len(tools)
        for tool in tools[shift:] + tools[:shift]:
            if not tool.active or len(tool.samples) >= tool.runs:
                continue
            sample = _run_once(tool, work / f"{tool.name}.log")
            if sample is None:
                continue
            tool.samples.append(sample)
            rss = _mib(sample.rss_kib)
            rss_text = "-" if rss is None else f"{rss:.1f} MiB"
            _log(
                f"  [{label} round {round_no + 1}/{repeat}] {tool.name:<12} "
                f"{sample.seconds:8.3f} s  {rss_text}"
            )


# --------------------------------------------------------------------------- tools


def _write_config(wheel: WheelInfo, path: Path) -> None:
    remove = ", ".join(json.dumps(p) for p in REMOVE)
    path.write_text(
        "[tool.wheelpatch]\n"
        f'local-version = "{LABEL}"\n\n'
        f"[tool.wheelpatch.overrides.{json.dumps(_canonical(wheel.project))}]\n"
        f"remove = [{remove}]\n",
        encoding="utf-8",
    )


def _editwheel_argv(exe: str, wheel: WheelInfo, out: Path) -> list[str]:
    kept = wheel.kept_requires
    if not any("," in r for r in kept):
        return [
            exe,
            *("edit", str(wheel.path), "--version", wheel.new_version),
            *("--set-requires-dist", ", ".join(kept), "-o", f"{out}{os.sep}"),
        ]
    # The CLI splits --set-requires-dist on commas; same engine through its Python API instead.
    _log("  note: a kept requirement has a comma; editwheel runs through its Python API")
    code = (
        "import json, os, sys; from editwheel import WheelEditor\n"
        "e = WheelEditor(sys.argv[1]); e.version = sys.argv[2]\n"
        "e.requires_dist = json.loads(sys.argv[3]); e.save(os.path.join(sys.argv[4], e.filename))"
    )
    return [
        sys.executable,
        "-c",
        code,
        str(wheel.path),
        wheel.new_version,
        json.dumps(kept),
        str(out),
    ]


def build_tools(wheel: WheelInfo, work: Path, args: argparse.Namespace) -> list[Tool]:
    config = work / "pyproject.toml"
    _write_config(wheel, config)
    tools: list[Tool] = []
    cp = shutil.which("cp")
    if cp:
        out = work / "out-cp"
        tools.append(Tool("cp", [cp, str(wheel.path), str(out / "x.whl")], out, args.repeat))
    else:
        _log("  cp not found: skipped")
    wheelpatch = _find_exe("wheelpatch")
    if wheelpatch:
        out = work / "out-wheelpatch"
        argv = [wheelpatch, "patch", "--config", str(config), "-o", str(out), "--force"]
        tools.append(Tool("wheelpatch", [*argv, str(wheel.path)], out, args.repeat))
    else:
        _log("  wheelpatch not found: skipped")
    editwheel = _find_exe("editwheel")
    if editwheel:
        out = work / "out-editwheel"
        tools.append(Tool("editwheel", _editwheel_argv(editwheel, wheel, out), out, args.repeat))
    else:
        _log("  editwheel not installed (pip install editwheel): skipped")
    wheel_exe = _find_exe("wheel")
    if args.skip_unpack_pack:
        _log("  unpack+pack: skipped (--skip-unpack-pack)")
    elif wheel_exe:
        out, scratch = work / "out-unpack-pack", work / "unpacked"
        argv = [sys.executable, str(Path(__file__).resolve()), UNPACK_PACK_HELPER, wheel_exe]
        argv += [str(wheel.path), str(scratch), str(out), wheel.new_version, *REMOVE]
        runs = min(args.unpack_repeat, args.repeat)
        tools.append(Tool("unpack+pack", argv, out, runs, scratch=scratch))
    else:
        _log("  wheel not installed (pip install wheel): unpack+pack skipped")
    return tools


# --------------------------------------------------------------------------- verification


def _output_of(tool: Tool) -> Path | None:
    outputs = sorted(tool.out_dir.glob("*.whl"))
    return outputs[0] if len(outputs) == 1 else None


def _check_output(tool: Tool, wheel: WheelInfo) -> str:
    """A one-line verdict on a tool's output after the warm-up run."""
    output = _output_of(tool)
    if output is None:
        return "no single output wheel"
    if tool.name == "cp":
        return "OK (same size)" if output.stat().st_size == wheel.size else "size differs"
    info = read_wheel_info(output, "output")
    problems = []
    if info.version != wheel.new_version:
        problems.append(f"Version {info.version!r}, expected {wheel.new_version!r}")
    if sorted(map(_canonical, info.requires_dist)) != sorted(map(_canonical, wheel.kept_requires)):
        problems.append(f"Requires-Dist {list(info.requires_dist)}")
    verdict = "; ".join(problems) or "OK (version and Requires-Dist as expected)"
    if tool.name == "wheelpatch":
        verdict += "; wheelpatch verify: " + _wheelpatch_verify(output)
    return f"{output.name}: {verdict}"


def _wheelpatch_verify(output: Path) -> str:
    exe = _find_exe("wheelpatch")
    if exe is None:
        return "wheelpatch not found"
    result = subprocess.run(
        [exe, "verify", str(output)], capture_output=True, text=True, check=False
    )
    text = (result.stdout + result.stderr).strip().replace("\n", " | ")
    return f"{'PASS' if result.returncode == 0 else 'FAIL'} ({text})"


def warm_up_and_verify(tools: list[Tool], wheel: WheelInfo, work: Path) -> None:
    _log("  warm-up (untimed) and output check:")
    for tool in tools:
        if _run_once(tool, work / f"{tool.name}.log") is None:
            continue
        _log(f"    {tool.name:<12} {_check_output(tool, wheel)}")
        _reset(tool)


# --------------------------------------------------------------------------- reporting


def summarize(tool: Tool) -> dict[str, Any]:
    seconds = [s.seconds for s in tool.samples]
    rss = [s.rss_kib / 1024 for s in tool.samples if s.rss_kib is not None]
    summary: dict[str, Any] = {"runs": len(seconds), "error": tool.error, "argv": tool.argv}
    if seconds:
        summary |= {
            "median_s": statistics.median(seconds),
            "min_s": min(seconds),
            "max_s": max(seconds),
            "seconds": seconds,
        }
    if rss:
        summary |= {"median_rss_mib": statistics.median(rss), "max_rss_mib": max(rss)}
    return summary


def _ratio(results: dict[str, dict[str, Any]], top: str, bottom: str) -> float | None:
    a = results.get(top, {}).get("median_s")
    b = results.get(bottom, {}).get("median_s")
    return None if a is None or not b else a / b


def assess(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    vs_editwheel = _ratio(results, "wheelpatch", "editwheel")
    speedup = _ratio(results, "unpack+pack", "wheelpatch")
    vs_cp = _ratio(results, "wheelpatch", "cp")
    rss = results.get("wheelpatch", {}).get("max_rss_mib")

    def verdict(value: float | None, ok: bool) -> str:
        return "n/a" if value is None else ("PASS" if ok else "MISS")

    return {
        "wheelpatch_vs_editwheel": vs_editwheel,
        "unpack_pack_vs_wheelpatch": speedup,
        "wheelpatch_vs_cp": vs_cp,
        "wheelpatch_max_rss_mib": rss,
        "targets": {
            "time_vs_editwheel": verdict(
                vs_editwheel, vs_editwheel is not None and vs_editwheel <= TARGET_VS_EDITWHEEL
            ),
            "speedup_vs_unpack_pack": verdict(
                speedup, speedup is not None and speedup >= TARGET_VS_UNPACK_PACK
            ),
            "peak_rss": verdict(rss, rss is not None and rss <= TARGET_RSS_MIB),
        },
    }


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _target_line(label: str, value: float | None, unit: str, target: str, state: str) -> str:
    shown = "-" if value is None else f"{value:.2f}{unit}"
    return f"  {label:<31} {shown:>11}   {target:<19} {state}".rstrip()


def print_table(
    wheel: WheelInfo, results: dict[str, dict[str, Any]], verdict: dict[str, Any]
) -> None:
    removed = len(wheel.requires_dist) - len(wheel.kept_requires)
    print(
        f"\n{wheel.path.name}  [{wheel.kind}; {wheel.size / 1e6:.1f} MB, "
        f"{wheel.members:,} members; {wheel.version} -> {wheel.new_version}, "
        f"{removed} Requires-Dist removed]"
    )
    print(
        f"  {'tool':<12} {'runs':>4} {'median s':>9} {'min s':>8} {'max s':>8} "
        f"{'RSS MiB (med)':>13} {'RSS MiB (max)':>13}"
    )
    for name, r in results.items():
        if not r["runs"]:
            print(f"  {name:<12} {0:>4}  failed: {(r['error'] or '').splitlines()[0]}")
            continue
        print(
            f"  {name:<12} {r['runs']:>4} {r['median_s']:>9.3f} {r['min_s']:>8.3f} "
            f"{r['max_s']:>8.3f} {_fmt(r.get('median_rss_mib'), '13.1f')} "
            f"{_fmt(r.get('max_rss_mib'), '13.1f')}"
        )
    targets = verdict["targets"]
    time_vs_editwheel = verdict["wheelpatch_vs_editwheel"]
    speedup = verdict["unpack_pack_vs_wheelpatch"]
    rss = verdict["wheelpatch_max_rss_mib"]
    for line in (
        _target_line(
            "wheelpatch / editwheel time",
            time_vs_editwheel,
            "x",
            f"target <= {TARGET_VS_EDITWHEEL}x",
            targets["time_vs_editwheel"],
        ),
        _target_line(
            "unpack+pack / wheelpatch time",
            speedup,
            "x",
            f"target >= {TARGET_VS_UNPACK_PACK:.0f}x",
            targets["speedup_vs_unpack_pack"],
        ),
        _target_line(
            "wheelpatch peak RSS (max run)",
            rss,
            " MiB",
            f"target <= {TARGET_RSS_MIB:.0f} MiB",
            targets["peak_rss"],
        ),
        _target_line(
            "wheelpatch / cp time", verdict["wheelpatch_vs_cp"], "x", "(cp: the floor)", ""
        ),
    ):
        print(line)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        if model:
            info["cpu"] = model.group(1).strip()
    for name, argv in (
        ("wheelpatch", ["--version"]),
        ("editwheel", ["--version"]),
        ("wheel", ["version"]),
    ):
        exe = _find_exe(name)
        if exe:
            result = subprocess.run([exe, *argv], capture_output=True, text=True, check=False)
            info[name] = (result.stdout or result.stderr).strip()
    return info


# --------------------------------------------------------------------------- main


def prepare_child_env(cache_dir: Path) -> str:
    """Let the measured Python tools use cached bytecode, as installed tools do.

    With PYTHONDONTWRITEBYTECODE set (some CI images set it) every run of a Python tool would
    recompile its modules. Children get it unset and a pycache prefix under ``cache_dir`` (so
    nothing is written beside the sources); the warm-up run fills it.
    """
    prefix = cache_dir / "pycache"
    prefix.mkdir(parents=True, exist_ok=True)
    dropped = os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None
    os.environ["PYTHONPYCACHEPREFIX"] = str(prefix)
    note = " (PYTHONDONTWRITEBYTECODE unset for the tools)" if dropped else ""
    return f"children cache it in {prefix}{note}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Time wheelpatch patch against cp, wheel unpack+pack and editwheel edit.",
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per tool (default 5)")
    parser.add_argument(
        "--unpack-repeat", type=int, default=3, help="timed runs of unpack+pack (default 3)"
    )
    parser.add_argument(
        "--wheel",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help=f"a real wheel to measure (repeatable; also ${ENV_WHEELS}); without one, the "
        "largest torch-*.whl reachable through pip's configuration is used",
    )
    parser.add_argument(
        "--no-discover",
        action="store_true",
        help="do not look for a torch wheel through pip's configuration",
    )
    parser.add_argument("--no-synthetic", action="store_true", help="skip the synthetic wheel")
    parser.add_argument(
        "--skip-unpack-pack",
        action="store_true",
        help="do not run wheel unpack + wheel pack (slow)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        metavar="DIR",
        help="where the synthetic wheel is kept (default benchmarks/.cache)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    return parser


def select_wheels(args: argparse.Namespace) -> list[WheelInfo]:
    wheels: list[WheelInfo] = []
    if not args.no_synthetic:
        wheels.append(read_wheel_info(synthetic_wheel(args.cache_dir), "synthetic"))
    real = explicit_wheels(args.wheel)
    kind = "real"
    if not real and not args.no_discover:
        found = discover_wheels("torch")
        if found:
            _log(
                "torch wheels found through pip's configuration: "
                + ", ".join(f"{p} ({p.stat().st_size / 1e6:.0f} MB)" for p in found)
            )
            real = [max(found, key=lambda p: p.stat().st_size)]
            kind = "real, found via pip config"
        else:
            _log(f"no torch wheel found through pip's configuration; set ${ENV_WHEELS}")
    for path in real:
        try:
            wheels.append(read_wheel_info(path.resolve(), kind))
        except (OSError, zipfile.BadZipFile, StopIteration) as exc:
            _log(f"not a readable wheel, ignored: {path} ({exc or 'no .dist-info/METADATA'})")
    return wheels


def bench_wheel(wheel: WheelInfo, args: argparse.Namespace) -> dict[str, Any]:
    _log(f"\n== {wheel.path} ({wheel.size / 1e6:.1f} MB, {wheel.members:,} members)")
    with tempfile.TemporaryDirectory(prefix="bench-patch-") as tmp:
        work = Path(tmp)
        tools = build_tools(wheel, work, args)
        warm_up_and_verify(tools, wheel, work)
        active = [t for t in tools if t.active]
        if active:
            run_rounds(active, args.repeat, work, wheel.project)
        for tool in tools:
            _reset(tool)
    results = {t.name: summarize(t) for t in tools}
    verdict = assess(results)
    print_table(wheel, results, verdict)
    return {
        "wheel": str(wheel.path),
        "kind": wheel.kind,
        "size": wheel.size,
        "members": wheel.members,
        "version": wheel.version,
        "new_version": wheel.new_version,
        "results": results,
        **verdict,
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [UNPACK_PACK_HELPER]:
        return unpack_pack_main(argv[1:])
    args = _parser().parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # keep the report in step with progress
    if args.repeat < 1 or args.unpack_repeat < 1:
        _parser().error("--repeat and --unpack-repeat must be at least 1")
    bytecode = prepare_child_env(args.cache_dir)
    host = machine()
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    print(f"command: {command}")
    print("machine: " + ", ".join(f"{k}={v}" for k, v in host.items()))
    print(f"bytecode: {bytecode}")
    print(f"edit: local version label {LABEL!r}; remove Requires-Dist {', '.join(REMOVE)}")
    wheels = select_wheels(args)
    if not wheels:
        print("nothing to benchmark: no synthetic wheel and no real wheel")
        return 2
    print("wheels: " + ", ".join(f"{w.path} ({w.kind})" for w in wheels))
    reports = [bench_wheel(wheel, args) for wheel in wheels]
    if args.json:
        print(json.dumps({"command": command, "machine": host, "wheels": reports}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
