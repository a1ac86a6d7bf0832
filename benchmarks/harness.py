"""What every ``bench_*.py`` shares: measuring child processes, reporting, finding the peers.

A script keeps its workload, its peers and its targets; this module runs them the same way for
all: each command is a child of a lean launcher that times it and reads its peak RSS; every
tool runs once untimed first (warm page cache; its output checked then), then the timed runs
are interleaved round-robin in a rotating order; medians, min and max, ratios and PASS/MISS
target lines are printed in the same table layout. It also finds the tools (``find_exe``) and
the wheels (the synthetic one, ``--wheel``/``$WHEELPATCH_BENCH_WHEEL``, else the largest
``torch-*.whl`` reachable through pip's configuration), describes the machine and makes the
children's environment hermetic. For benchmarks of servers it starts a server on a free
127.0.0.1 port (``start_server``), stops it by its process id, and reads the peak RSS of it and
of its worker processes from ``/proc``.
"""

from __future__ import annotations

import argparse
import dataclasses
import email.parser
import fnmatch
import io
import os
import platform
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from synthetic import synthetic_wheel

ENV_WHEELS = "WHEELPATCH_BENCH_WHEEL"
DEFAULT_CACHE = Path(__file__).resolve().parent / ".cache"
ROOT = Path(__file__).resolve().parent.parent

_T = TypeVar("_T")

# Each measured command is the child of this small launcher (`python -I -S -c`), which forks it,
# times it with perf_counter and reaps it with os.wait4, then prints "seconds maxrss status".
# Why not Popen + wait4 here directly: Linux's ru_maxrss of a child starts at the RSS of the memory
# it was forked (or vforked) from, so every figure would be at least the benchmark's own peak
# (hundreds of MiB after building the synthetic wheel). The launcher's floor is ~6 MiB. On Linux
# ru_maxrss is the largest of the child and of every descendant it waited for.
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


def log(message: str) -> None:
    """Progress, on stderr: stdout holds the report."""
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Sample:
    seconds: float
    rss_kib: int | None


class ToolFailed(Exception):
    pass


def _maxrss_kib(value: int) -> int:
    return value // 1024 if sys.platform == "darwin" else value  # macOS reports bytes


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_measured(argv: Sequence[str], log_file: Path) -> Sample:
    """Run ``argv`` through the lean launcher: its wall time and peak RSS (or a descendant's).

    Its stdout and stderr go to ``log_file``; a non-zero exit raises ToolFailed with its tail.
    """
    if not (hasattr(os, "fork") and hasattr(os, "wait4")):  # pragma: no cover - Windows
        return _run_plain(argv, log_file)
    launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, *argv]
    with log_file.open("wb") as sink:
        result = subprocess.run(
            launcher, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=sink, check=False
        )
    fields = result.stdout.split()
    if result.returncode != 0 or len(fields) != 3:
        raise ToolFailed(f"launcher failed: {shlex.join(argv)}\n{_tail(log_file)}")
    seconds, maxrss, status = float(fields[0]), int(fields[1]), int(fields[2])
    if status != 0:
        raise ToolFailed(f"exit status {status}: {shlex.join(argv)}\n{_tail(log_file)}")
    return Sample(seconds, _maxrss_kib(maxrss))


def _run_plain(argv: Sequence[str], log_file: Path) -> Sample:  # pragma: no cover - Windows
    with log_file.open("wb") as sink:
        start = time.perf_counter()
        status = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, check=False
        ).returncode
        seconds = time.perf_counter() - start
    if status != 0:
        raise ToolFailed(f"exit status {status}: {shlex.join(argv)}\n{_tail(log_file)}")
    return Sample(seconds, None)


def sync() -> None:
    """Flush dirty pages, so that no run's write-back lands in the next run's time."""
    if hasattr(os, "sync"):
        os.sync()


def empty_dirs(*directories: Path | None) -> None:
    """Delete and recreate each directory given, then sync: outside the timed region."""
    for directory in directories:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
    sync()


@dataclass
class Tool:
    """One peer's command on one workload, and its timed samples.

    ``prepare`` runs before every run and ``finish`` after it, both untimed: by default they
    empty ``out_dir`` (and ``scratch``); a workload that needs more (a fresh venv) overrides them.
    """

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

    def prepare(self) -> None:
        empty_dirs(self.out_dir, self.scratch)

    def finish(self) -> None:
        empty_dirs(self.out_dir, self.scratch)


def _run_once(tool: Tool, work: Path, keep: bool = False) -> Sample | None:
    """One measured run (log in ``work``); a failure (of the run, or of a ``prepare`` that
    raises ToolFailed or OSError) drops the tool. ``keep``: no ``finish``."""
    try:
        tool.prepare()
        return run_measured(tool.argv, work / f"{tool.name}.log")
    except (ToolFailed, OSError) as exc:
        tool.error = str(exc)
        log(f"  {tool.name} FAILED, dropped: {exc}")
        return None
    finally:
        if not keep or tool.error is not None:
            tool.finish()


def _warm_up(
    tools: Sequence[Tool],
    work: Path,
    check: Callable[[Tool], str] | None = None,
    what: str = "output",
    width: int = 12,
) -> None:
    """One untimed run of each tool, so that every tool sees a warm page cache.

    ``check`` is asked of each output while it is still there, and returns a one-line verdict.
    """
    log(f"  warm-up (untimed) and {what} check:" if check else "  warm-up (untimed):")
    for tool in tools:
        if _run_once(tool, work, keep=True) is None:
            continue
        try:
            verdict = check(tool) if check else None
        finally:
            tool.finish()
        if verdict is not None:
            log(f"    {tool.name:<{width}} {verdict}")


def interleave(groups: Sequence[Sequence[_T]], repeat: int) -> Iterator[tuple[int, _T]]:
    """(round, item): each round visits every item once; each group's order rotates by round."""
    for round_no in range(repeat):
        for group in groups:
            shift = round_no % len(group)
            for item in [*group[shift:], *group[:shift]]:
                yield round_no, item


def _run_rounds(tools: list[Tool], repeat: int, work: Path, label: str, width: int = 12) -> None:
    """The timed runs, round-robin, until each tool has its ``runs`` (or has failed)."""
    for round_no, tool in interleave([tools], repeat):
        if not tool.active or len(tool.samples) >= tool.runs:
            continue
        sample = _run_once(tool, work)
        if sample is None:
            continue
        tool.samples.append(sample)
        rss = "-" if sample.rss_kib is None else f"{sample.rss_kib / 1024:.1f} MiB"
        log(
            f"  [{label} round {round_no + 1}/{repeat}] {tool.name:<{width}} "
            f"{sample.seconds:8.3f} s  {rss}"
        )


def measure(
    tools: list[Tool],
    repeat: int,
    work: Path,
    label: str,
    check: Callable[[Tool], str] | None = None,
    what: str = "output",
    width: int = 12,
) -> dict[str, dict[str, Any]]:
    """Warm up, check, then the timed rounds of the tools that did not fail: each one's summary."""
    _warm_up(tools, work, check, what, width)
    active = [t for t in tools if t.active]
    if active:
        _run_rounds(active, repeat, work, label, width)
    return {t.name: _summarize(t) for t in tools}


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (another process may take it first:
    ``start_server`` tries again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers(url: str, timeout: float = 2.0) -> bool:
    """Whether ``url`` answers 200, asked without any proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:  # URLError and HTTPError are OSErrors
        return False


def vm_hwm_kib(pid: int) -> int | None:
    """The peak resident set (``VmHWM``) of a live process, in KiB; None if it is gone (or this
    is not Linux). Unlike ``ru_maxrss`` it starts afresh at ``exec``."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else None


def descendants(pid: int) -> list[int]:
    """The live processes below ``pid`` (children, theirs, ...), from ``/proc``; [] elsewhere."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = entry.read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = text.rpartition(")")[2].split()
        if len(fields) > 1:
            parents.setdefault(int(fields[1]), []).append(int(entry.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        children = sorted(parents.get(todo.pop(), []))
        found.extend(children)
        todo.extend(children)
    return found


def command_line(pid: int) -> str:
    """A process's command line, its arguments joined by spaces ("" if it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")


@dataclass
class Server:
    """A server child of this script, listening at ``url``; its output goes to ``log``."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def peak_rss(self) -> dict[int, int]:
        """pid -> peak RSS (KiB) of the server and of each live process below it."""
        found = {pid: vm_hwm_kib(pid) for pid in [self.pid, *descendants(self.pid)]}
        return {pid: kib for pid, kib in found.items() if kib is not None}

    def stop(self) -> None:
        """SIGTERM by its process id, then SIGKILL after 15 s; idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    name: str,
    command: Callable[[int], Sequence[str]],
    ready: str,
    log: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Server:
    """Run ``command(port)`` on a free 127.0.0.1 port until ``http://127.0.0.1:PORT`` + ``ready``
    answers 200; up to three ports are tried (another process may take one first). Its output
    is appended to ``log``; ``env`` is added to this process's environment. Raises ToolFailed
    with the log's tail if it never answers."""
    for _ in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with log.open("ab") as sink:
            process = subprocess.Popen(
                list(command(port)),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        server = Server(name, url, process, log)
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            if answers(url + ready):
                return server
            time.sleep(0.05)
        server.stop()
    raise ToolFailed(f"{name} did not answer at {ready}:\n{_tail(log)}")


# --------------------------------------------------------------------------- figures


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _summarize(tool: Tool) -> dict[str, Any]:
    """A tool's runs as reported (and in ``--json``): times in s, peak RSS in MiB."""
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


def ratio(results: Mapping[str, Mapping[str, Any]], top: str, bottom: str) -> float | None:
    """``top``'s median time over ``bottom``'s; None unless both ran."""
    a = results.get(top, {}).get("median_s")
    b = results.get(bottom, {}).get("median_s")
    return None if a is None or not b else a / b


@dataclass(frozen=True)
class Target:
    """A figure of the report with the limit it should meet (none: a reference, with a note)."""

    key: str  # the figure's key in the JSON report
    label: str
    value: float | None
    unit: str = "x"
    limit: float | None = None
    goal: str = ""  # the verdict's key in the report's "targets"
    at_least: bool = False
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.limit is None:
            return ""
        if self.value is None:
            return "n/a"
        met = self.value >= self.limit if self.at_least else self.value <= self.limit
        return "PASS" if met else "MISS"

    def line(self) -> str:
        shown = "-" if self.value is None else f"{self.value:.2f}{self.unit}"
        wanted = self.note
        if self.limit is not None:
            wanted = f"target {'>=' if self.at_least else '<='} {self.limit}{self.unit}"
        return f"  {self.label:<31} {shown:>11}   {wanted:<19} {self.verdict}".rstrip()


def time_target(
    results: Mapping[str, Mapping[str, Any]], top: str, bottom: str, **target: Any
) -> Target:
    """``top``'s median time over ``bottom``'s: "top / bottom time", key ``top_vs_bottom``."""
    key = re.sub(r"\W+", "_", f"{top}_vs_{bottom}")
    return Target(key, f"{top} / {bottom} time", ratio(results, top, bottom), **target)


def rss_target(
    results: Mapping[str, Mapping[str, Any]], tool: str, label: str, **target: Any
) -> Target:
    """``tool``'s largest peak RSS of its runs, in MiB: key ``tool_max_rss_mib``."""
    value = results.get(tool, {}).get("max_rss_mib")
    return Target(f"{tool}_max_rss_mib", label, value, unit=" MiB", **target)


def _verdicts(targets: Iterable[Target]) -> dict[str, Any]:
    """The figures and the verdicts of ``targets``, for the JSON report."""
    targets = list(targets)
    return {
        **{t.key: t.value for t in targets},
        "targets": {t.goal: t.verdict for t in targets if t.limit is not None},
    }


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Column:
    """A table column: its title, width, the format of its values, and their key in a row."""

    title: str
    width: int
    spec: str = ""
    key: str = ""
    suffix: str = ""

    def cell(self, value: object) -> str:
        return "-" if value is None else format(value, self.spec) + self.suffix


def _line(columns: Sequence[Column], texts: Sequence[str]) -> str:
    """The first column left-aligned, the others right-aligned; as many cells as texts."""
    cells = [
        text.ljust(column.width) if index == 0 else text.rjust(column.width)
        for index, (column, text) in enumerate(zip(columns, texts, strict=False))
    ]
    return "  " + " ".join(cells)


def print_table(columns: Sequence[Column], rows: Iterable[Mapping[str, Any]]) -> None:
    """A header and a line per row; a row that never ran says why it failed instead."""
    print(_line(columns, [c.title for c in columns]))
    for row in rows:
        texts = [c.cell(row.get(c.key)) for c in columns]
        if row.get("runs") == 0 and "error" in row:
            why = (row["error"] or "no run").splitlines()[0]
            print(_line(columns, texts[:2]) + f"  failed: {why}")
        else:
            print(_line(columns, texts))


_TOOL = Column("tool", 12, key="tool")
TIMES = (
    _TOOL,
    Column("runs", 4, key="runs"),
    Column("median s", 9, ".3f", "median_s"),
    Column("min s", 8, ".3f", "min_s"),
    Column("max s", 8, ".3f", "max_s"),
)
RSS = (
    Column("RSS MiB (med)", 13, ".1f", "median_rss_mib"),
    Column("RSS MiB (max)", 13, ".1f", "max_rss_mib"),
)


def print_tools(
    results: Mapping[str, Mapping[str, Any]], columns: Sequence[Column] = (*TIMES, *RSS)
) -> None:
    """The table of the tools' summaries, one line a tool (the first column as wide as the
    longest name)."""
    widest = max((len(name) for name in results), default=0)
    columns = [
        dataclasses.replace(c, width=max(c.width, widest)) if c is _TOOL else c for c in columns
    ]
    print_table(columns, [{_TOOL.key: name, **r} for name, r in results.items()])


# --------------------------------------------------------------------------- peers and wheels


def find_exe(name: str) -> str | None:
    """``name`` beside this interpreter (its venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return canonical(match.group(1)) if match else ""


def is_removed(requirement: str, patterns: Sequence[str]) -> bool:
    """Whether a ``remove = [...]`` list of name patterns removes ``requirement``."""
    name = _requirement_name(requirement)
    return any(fnmatch.fnmatchcase(name, canonical(p)) for p in patterns)


@dataclass(frozen=True)
class WheelInfo:
    path: Path
    kind: str  # "synthetic", "real" or "real, found via pip config"
    project: str
    version: str
    requires_dist: tuple[str, ...]
    members: int
    size: int

    def new_version(self, label: str) -> str:
        """The version with the local label ``label`` appended."""
        sep = "." if "+" in self.version else "+"
        return f"{self.version}{sep}{label}"

    def kept_requires(self, remove: Sequence[str]) -> tuple[str, ...]:
        return tuple(r for r in self.requires_dist if not is_removed(r, remove))


def wheel_report(
    wheel: WheelInfo,
    results: Mapping[str, Any],
    targets: Iterable[Target],
    **facts: Any,
) -> dict[str, Any]:
    """A wheel's part of the JSON report: the wheel, ``facts``, results and targets."""
    return {
        "wheel": str(wheel.path),
        "kind": wheel.kind,
        "size": wheel.size,
        "members": wheel.members,
        "version": wheel.version,
        **facts,
        "results": results,
        **_verdicts(targets),
    }


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


def _discover_wheels(project: str = "torch") -> list[Path]:
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


def _explicit_wheels(cli_wheels: Sequence[Path]) -> list[Path]:
    """``$WHEELPATCH_BENCH_WHEEL`` (paths separated by ``os.pathsep``), then ``--wheel``."""
    env = [Path(p) for p in os.environ.get(ENV_WHEELS, "").split(os.pathsep) if p]
    return [*env, *cli_wheels]


def select_wheels(args: argparse.Namespace) -> list[WheelInfo]:
    """The synthetic wheel unless ``--no-synthetic``, then the real ones.

    Real: ``$WHEELPATCH_BENCH_WHEEL`` and ``--wheel``, else (unless ``--no-discover``) the
    largest torch wheel found through pip's configuration. Reads pip's configuration: call it
    before ``hermetic_env``.
    """
    wheels: list[WheelInfo] = []
    if not args.no_synthetic:
        wheels.append(read_wheel_info(synthetic_wheel(args.cache_dir), "synthetic"))
    real = _explicit_wheels(args.wheel)
    kind = "real"
    if not real and not args.no_discover:
        found = _discover_wheels("torch")
        if found:
            log(
                "torch wheels found through pip's configuration: "
                + ", ".join(f"{p} ({p.stat().st_size / 1e6:.0f} MB)" for p in found)
            )
            real = [max(found, key=lambda p: p.stat().st_size)]
            kind = "real, found via pip config"
        else:
            log(f"no torch wheel found through pip's configuration; set ${ENV_WHEELS}")
    for path in real:
        try:
            wheels.append(read_wheel_info(path.resolve(), kind))
        except (OSError, zipfile.BadZipFile, StopIteration) as exc:
            log(f"not a readable wheel, ignored: {path} ({exc or 'no .dist-info/METADATA'})")
    return wheels


# --------------------------------------------------------------------------- the machine


#: How each peer says its version (the first word found with ``find_exe`` unless a path).
_VERSION_COMMANDS = {
    "wheelpatch": ["wheelpatch", "--version"],
    "editwheel": ["editwheel", "--version"],
    "wheel": ["wheel", "version"],
    "installer": [sys.executable, "-c", "import installer; print(installer.__version__)"],
    "pip": [sys.executable, "-m", "pip", "--version"],
    "uv": ["uv", "--version"],
}


def machine(peers: Sequence[str] = ()) -> dict[str, Any]:
    """CPUs, Python and platform, and the version of each of ``peers`` that is installed."""
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
    for name in peers:
        argv = _VERSION_COMMANDS[name]
        exe = argv[0] if os.path.isabs(argv[0]) else find_exe(argv[0])
        if exe is None:
            continue
        try:
            result = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, check=False)
        except OSError:
            continue
        if result.returncode == 0:
            info[name] = (result.stdout or result.stderr).strip().split(" from ")[0]
    return info


def source_state() -> str:
    """The wheelpatch source measured: its commit, and whether the work tree has changes."""
    try:
        result = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--tags"],
            capture_output=True,
            text=True,
            check=False,
        )
        changed = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "unknown (no git)"
    files = [line[3:] for line in changed.stdout.splitlines()]
    tail = f"; uncommitted changes in {', '.join(files)}" if files else ""
    return (result.stdout.strip() or "unknown") + tail


# --------------------------------------------------------------------------- environment


def bytecode_env(cache_dir: Path) -> str:
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


def hermetic_env(
    prefixes: Sequence[str] = ("PIP_",),
    names: Sequence[str] = (),
    fixed: Mapping[str, str] | None = None,
) -> str:
    """Make the children independent of the user's configuration: drop every variable starting
    with one of ``prefixes`` and those in ``names``, then set pip's to no configuration file and
    no version check, and ``fixed``. Returns what was done, for the report."""
    dropped = sorted(k for k in os.environ if k.startswith(tuple(prefixes)) or k in names)
    for key in dropped:
        del os.environ[key]
    values = {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **(fixed or {})}
    os.environ.update(values)
    shown = " ".join(f"{k}={v}" for k, v in values.items())
    return f"{shown}; unset: {', '.join(dropped) or 'nothing'}"


# --------------------------------------------------------------------------- command line


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    parse.__name__ = "int"  # argparse names the type in its "invalid int value" message
    return parse


at_least_1 = _at_least(1)
at_least_0 = _at_least(0)


def base_parser(
    description: str, per: str = "tool", wheels: str | None = None
) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--repeat``, ``--cache-dir``, ``--json``; with
    ``wheels`` (what is done to them: "measure", "install", ...) also ``--wheel``,
    ``--no-discover`` and ``--no-synthetic``. A script adds its own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--repeat", type=at_least_1, default=5, help=f"timed runs per {per} (default 5)"
    )
    if wheels:
        parser.add_argument(
            "--wheel",
            type=Path,
            action="append",
            default=[],
            metavar="PATH",
            help=f"a real wheel to {wheels} (repeatable; also ${ENV_WHEELS}); without one, the "
            "largest torch-*.whl reachable through pip's configuration is used",
        )
        parser.add_argument(
            "--no-discover",
            action="store_true",
            help="do not look for a torch wheel through pip's configuration",
        )
        parser.add_argument("--no-synthetic", action="store_true", help="skip the synthetic wheel")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        metavar="DIR",
        help=f"where {'the synthetic wheel is kept and ' if wheels else ''}the children cache "
        "their bytecode (default benchmarks/.cache)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # keep the report in step with progress
    return args


def print_context(host: Mapping[str, Any], **lines: str) -> str:
    """Print the command, the machine and ``lines`` (``name: value``); returns the command."""
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    print(f"command: {command}")
    print("machine: " + ", ".join(f"{k}={v}" for k, v in host.items()))
    for name, value in lines.items():
        print(f"{name}: {value}")
    return command
