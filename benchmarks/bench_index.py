"""Benchmark ``wheelpatch index`` against static index generators on a real wheelhouse.

What it measures
    The wheels found on this machine (``/opt/wheels``, ``/opt/pypi/files``,
    ``/opt/pypi-more/files``, or the directories given with ``--wheels``), of which a fixed choice
    is made: the ``--count`` (70) wheels are the largest half of them plus the other half spread
    evenly over the rest by size, so the wheelhouse has several GB and wheels of every size. They
    are hard-linked once into the run's folder; every tool then starts each run from its own fresh
    link farm of them and an empty output (made, and deleted after the run, outside the timed
    region) and writes a site:

    * ``wheelpatch``      -- ``wheelpatch index STAGE -o OUT --json``;
    * ``wheelpatch +1``   -- the incremental re-index: STAGE without one wheel (the median by size)
                             is indexed into OUT untimed, the wheel is added to STAGE, then the
                             same command is timed; its ``--json`` report must say it hashed that
                             wheel alone;
    * ``simple503``       -- ``simple503 STAGE OUT`` (it moves the wheels from STAGE into OUT,
                             a rename, and writes the ``.metadata`` beside each);
    * ``simple-repo-gen`` -- ``simple-repository-generator --copy -o OUT STAGE`` (``--copy`` makes
                             the portable tree, files copied into ``OUT/packages``; without it the
                             pages link to the absolute paths of STAGE); measured when installed;
    * ``dumb-pypi+hash``  -- a child of this script that does what dumb-pypi leaves to its user
                             to get hashes and PEP 658: it hashes each wheel, writes its METADATA
                             beside it and a ``--package-list-json`` line (hash, Requires-Python,
                             Requires-Dist, core-metadata hash, upload time), then runs
                             ``dumb-pypi --package-list-json LIST --output-dir OUT
                             --packages-url ../../files/`` (the wheels are linked into
                             ``OUT/files`` untimed);
    * ``dumb-pypi``       -- ``dumb-pypi --package-list NAMES ...``: file names only, as its
                             README shows; it reads no wheel, so its output has no hash and no
                             metadata: a floor, not a peer (no target).

    Every command runs through ``harness.py``'s launcher (wall time, peak RSS of the child and its
    descendants); each tool runs once untimed first (warm page cache), when its output is checked,
    then the timed runs are interleaved round-robin.

What each output covers (checked on the files, not taken from the tools' docs)
    The root page is parsed (``html.parser``), each project page it links to, each file link on
    them; links are resolved as a web server serving OUT would. Against each wheel's own sha256,
    METADATA bytes and Requires-Python (computed once by this script):
    PEP 503 (every wheel linked from its normalized project's page, the link reaching the file),
    ``#sha256=``, ``data-requires-python`` (equal to the wheel's, after HTML unescaping), PEP 658
    (a ``.metadata`` beside the file, byte for byte the wheel's METADATA; the
    ``data-dist-info-metadata`` attribute and its hash), PEP 714 (``data-core-metadata`` and its
    hash), PEP 691 (a JSON document beside a project page, with ``meta.api-version``, listing
    every file with its sha256) and PEP 700 (api-version >= 1.1, ``versions``, and ``size`` on
    every file). A cell says ``yes`` (every wheel), ``no`` (none), ``true`` (the attribute without
    a hash) or how many of them.

Targets (issue 12)
    ``wheelpatch`` faster than every peer that reads the wheels on a cold index (simple503,
    simple-repository-generator, dumb-pypi+hash); ``wheelpatch +1`` under 10% of ``wheelpatch``'s
    cold time. A missed target prints ``MISS``; the exit status is still 0.

Run (from the repository root; one benchmark at a time, it reads and hashes several GB a run)::

    python benchmarks/bench_index.py --repeat 3
    python benchmarks/bench_index.py --wheels path/to/wheelhouse --count 0 --json
"""

from __future__ import annotations

import argparse
import email.parser
import hashlib
import html.parser
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import zipfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, parse_wheel_filename

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import Column, Target, Tool, find_exe, log

DEFAULT_DIRS = (Path("/opt/wheels"), Path("/opt/pypi/files"), Path("/opt/pypi-more/files"))
DEFAULT_COUNT = 70
DUMB_PYPI_HELPER = "_dumb-pypi-hashed"

TARGET_INCREMENTAL = 0.10
TARGET_VS_PEER = 1.0
#: The peers that read every wheel, as wheelpatch does: the cold-index target is against these.
READING_PEERS = ("simple503", "simple-repo-gen", "dumb-pypi+hash")

COLUMNS = (Column("tool", 15, key="tool"), *harness.TIMES[1:], *harness.RSS)


# --------------------------------------------------------------------------- the wheelhouse


@dataclass(frozen=True)
class Reference:
    """What a wheel's entry in an index must say, computed here once from the wheel."""

    path: Path
    project: str
    size: int
    sha256: str
    metadata: bytes
    requires_python: str | None


def _metadata_bytes(archive: zipfile.ZipFile) -> bytes:
    names = archive.namelist()
    (name,) = (n for n in names if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
    return archive.read(name)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _requires_python(metadata: bytes) -> str | None:
    value = email.parser.BytesHeaderParser().parsebytes(metadata).get("Requires-Python")
    return None if value is None else str(value).strip()


def choose_wheels(directories: Sequence[Path], count: int) -> list[Path]:
    """The wheels of ``directories`` (a name seen twice: the first one), readable, chosen
    deterministically: the largest ``count // 2`` and the rest spread evenly by size (0: all)."""
    by_name: dict[str, Path] = {}
    for directory in directories:
        for path in sorted(directory.glob("*.whl")) if directory.is_dir() else ():
            by_name.setdefault(path.name, path)
    wheels = sorted(by_name.values(), key=lambda p: (-p.stat().st_size, p.name))
    if count and len(wheels) > count:
        top, rest = wheels[: count // 2], wheels[count // 2 :]
        step = len(rest) / (count - len(top))
        wheels = [*top, *(rest[int(i * step)] for i in range(count - len(top)))]
    return sorted(wheels, key=lambda p: p.name)


def read_references(wheels: Sequence[Path]) -> dict[str, Reference]:
    """Each wheel's reference entry; a wheel without a readable METADATA is left out (logged)."""

    def one(path: Path) -> Reference | None:
        try:
            with zipfile.ZipFile(path) as archive:
                metadata = _metadata_bytes(archive)
            name = parse_wheel_filename(path.name)[0]
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            log(f"  not a readable wheel, left out: {path} ({exc})")
            return None
        return Reference(
            path=path,
            project=str(canonicalize_name(name)),
            size=path.stat().st_size,
            sha256=_sha256_file(path),
            metadata=metadata,
            requires_python=_requires_python(metadata),
        )

    with ThreadPoolExecutor(2) as pool:
        found = [r for r in pool.map(one, wheels) if r is not None]
    return {r.path.name: r for r in found}


def link_all(sources: Sequence[Path], directory: Path) -> None:
    """Hard-link (else copy) ``sources`` into ``directory``, which exists."""
    for source in sources:
        target = directory / source.name
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)


# --------------------------------------------------------------------------- tools


@dataclass
class IndexTool(Tool):
    """A tool writing a site into ``out_dir`` from ``stage``: before each run, both are emptied
    and ``wheels`` are linked into ``stage`` (inside ``out_dir`` for dumb-pypi); ``before``
    does more untimed setup (the incremental run's first index). ``simple`` is where the site's
    root page lives inside ``out_dir``."""

    stage: Path = Path()
    wheels: Sequence[Path] = ()
    simple: str = "simple/"
    before: Callable[[IndexTool], None] | None = None
    report: dict[str, Any] = field(default_factory=dict)

    def prepare(self) -> None:
        inside = self.stage.is_relative_to(self.out_dir)
        harness.empty_dirs(self.out_dir, self.scratch, None if inside else self.stage)
        self.stage.mkdir(parents=True, exist_ok=True)
        link_all(self.wheels, self.stage)
        if self.before is not None:
            self.before(self)
        harness.sync()

    def finish(self) -> None:
        harness.empty_dirs(self.out_dir, self.scratch, self.stage)


def _index_all_but(added: Path, wheelpatch: str) -> Callable[[IndexTool], None]:
    """The incremental run's setup: index the stage without ``added``, then add it."""

    def before(tool: IndexTool) -> None:
        (tool.stage / added.name).unlink()
        subprocess.run(
            [wheelpatch, "index", str(tool.stage), "-o", str(tool.out_dir)],
            stdout=subprocess.DEVNULL,
            check=True,
        )
        link_all([added], tool.stage)

    return before


def build_tools(wheels: Sequence[Path], added: Path, work: Path, repeat: int) -> list[IndexTool]:
    tools: list[IndexTool] = []
    wheelpatch = find_exe("wheelpatch")
    if wheelpatch is None:
        raise SystemExit("wheelpatch is not installed in this environment")

    def add(name: str, argv: list[str], out: Path, stage: Path, **extra: Any) -> None:
        tools.append(IndexTool(name, argv, out, repeat, stage=stage, wheels=wheels, **extra))

    def site(slug: str) -> tuple[Path, Path]:
        return work / f"out-{slug}", work / f"stage-{slug}"

    out, stage = site("wheelpatch")
    add("wheelpatch", [wheelpatch, "index", str(stage), "-o", str(out), "--json"], out, stage)
    out, stage = site("wheelpatch-link")
    argv = [wheelpatch, "index", "--link", str(stage), "-o", str(out), "--json"]
    add("wheelpatch --link", argv, out, stage)
    out, stage = site("incremental")
    argv = [wheelpatch, "index", str(stage), "-o", str(out), "--json"]
    add("wheelpatch +1", argv, out, stage, before=_index_all_but(added, wheelpatch))
    simple503 = find_exe("simple503")
    if simple503:
        out, stage = site("simple503")
        add("simple503", [simple503, str(stage), str(out)], out, stage, simple="")
    else:
        log("  simple503 not installed (pip install simple503): skipped")
    generator = find_exe("simple-repository-generator")
    if generator:
        out, stage = site("srg")
        add("simple-repo-gen", [generator, "--copy", "-o", str(out), str(stage)], out, stage)
    else:
        log("  simple-repository-generator not installed: skipped")
    dumb_pypi = find_exe("dumb-pypi")
    if dumb_pypi:
        out = work / "out-dumb-pypi-hash"
        argv = [sys.executable, str(Path(__file__).resolve()), DUMB_PYPI_HELPER, dumb_pypi]
        argv += [str(out / "files"), str(work / "packages.jsonl"), str(out)]
        add("dumb-pypi+hash", argv, out, out / "files")
        names = work / "packages.txt"
        names.write_text("".join(f"{w.name}\n" for w in wheels), encoding="utf-8")
        out = work / "out-dumb-pypi"
        argv = [dumb_pypi, "--package-list", str(names), "--output-dir", str(out)]
        add("dumb-pypi", [*argv, "--packages-url", "../../files/"], out, out / "files")
    else:
        log("  dumb-pypi not installed (pip install dumb-pypi): skipped")
    return tools


# --------------------------------------------------------------------------- dumb-pypi + hashes


def dumb_pypi_hashed_main(argv: Sequence[str]) -> int:
    """The ``dumb-pypi+hash`` child: hash, write sidecars and the JSON list, run dumb-pypi."""
    parser = argparse.ArgumentParser(prog=f"bench_index.py {DUMB_PYPI_HELPER}")
    parser.add_argument("dumb_pypi")
    parser.add_argument("files", type=Path)
    parser.add_argument("package_list", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    lines: list[str] = []
    for wheel in sorted(args.files.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            metadata = _metadata_bytes(archive)
        (args.files / f"{wheel.name}.metadata").write_bytes(metadata)
        headers = email.parser.BytesHeaderParser().parsebytes(metadata)
        row: dict[str, Any] = {
            "filename": wheel.name,
            "hash": f"sha256={_sha256_file(wheel)}",
            "core_metadata": f"sha256={hashlib.sha256(metadata).hexdigest()}",
            "requires_dist": [str(r) for r in headers.get_all("Requires-Dist") or ()],
            "upload_timestamp": int(wheel.stat().st_mtime),
        }
        if headers.get("Requires-Python") is not None:
            row["requires_python"] = str(headers["Requires-Python"]).strip()
        lines.append(json.dumps(row) + "\n")
    args.package_list.write_text("".join(lines), encoding="utf-8")
    command = [args.dumb_pypi, "--package-list-json", str(args.package_list)]
    command += ["--output-dir", str(args.out_dir), "--packages-url", "../../files/"]
    return subprocess.run(command, check=False).returncode


# --------------------------------------------------------------------------- what an output covers


class _Anchors(html.parser.HTMLParser):
    """The ``<a>`` elements of a page: their attributes (unescaped) and their text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self._open: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open, self._text = dict(attrs), []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.anchors.append((self._open, "".join(self._text).strip()))
            self._open = None


def _anchors(page: Path) -> list[tuple[dict[str, str | None], str]]:
    parser = _Anchors()
    parser.feed(page.read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return parser.anchors


_ORIGIN = "http://site.invalid/"


def _local(site: Path, url: str) -> Path | None:
    """The file under ``site`` that a server of ``site`` answers ``url`` with (None: elsewhere)."""
    parts = urllib.parse.urlsplit(url)
    if not url.startswith(_ORIGIN):
        return None
    path = urllib.parse.unquote(parts.path)
    if path.endswith("/"):
        path += "index.html"
    return site / path.lstrip("/")


def _hash_of(value: str | None) -> str | None:
    """``sha256=HEX`` -> HEX; other values (``true``, absent) -> None."""
    if value and value.startswith("sha256="):
        return value.removeprefix("sha256=")
    return None


@dataclass
class _Tally:
    """Counts of the wheels for which each feature was right."""

    listed: int = 0
    sha256: int = 0
    requires_python: int = 0
    sidecar: int = 0
    dist_info: int = 0
    dist_info_true: int = 0
    core: int = 0
    core_true: int = 0
    json_files: int = 0
    json_pages: int = 0
    json_700: int = 0
    problems: list[str] = field(default_factory=list)


def _json_page(directory: Path) -> dict[str, Any] | None:
    """A PEP 691 project document beside the HTML page, under whatever name, if there is one."""
    for candidate in sorted(p for p in directory.iterdir() if p.is_file()):
        if candidate.name == "index.html" or candidate.suffix == ".metadata":
            continue
        try:
            document = json.loads(candidate.read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(document, dict) and "api-version" in document.get("meta", {}):
            return document
    return None


def _check_json(document: dict[str, Any], refs: Mapping[str, Reference], tally: _Tally) -> None:
    tally.json_pages += 1
    version = tuple(int(p) for p in str(document["meta"]["api-version"]).split(".")[:2])
    files = [f for f in document.get("files", []) if isinstance(f, dict)]
    pep700 = version >= (1, 1) and isinstance(document.get("versions"), list)
    for entry in files:
        ref = refs.get(str(entry.get("filename")))
        if ref is None:
            continue
        if entry.get("hashes", {}).get("sha256") == ref.sha256:
            tally.json_files += 1
        if pep700 and entry.get("size") == ref.size:
            tally.json_700 += 1


def check_site(tool: IndexTool, refs: Mapping[str, Reference]) -> dict[str, str]:
    """Which PEPs ``tool``'s site covers, feature by feature, checked against ``refs``."""
    site = tool.out_dir
    tally = _Tally()
    root_url = _ORIGIN + tool.simple
    root = _local(site, root_url)
    seen: set[str] = set()
    if root is None or not root.is_file():
        return {"PEP 503": f"no root page at {tool.simple or '/'}index.html"}
    for attrs, _text in _anchors(root):
        project_url = urllib.parse.urljoin(root_url, attrs.get("href") or "")
        page = _local(site, project_url)
        if page is None or not page.is_file():
            tally.problems.append(f"project link {project_url} reaches no page")
            continue
        project = page.parent.name
        document = _json_page(page.parent)
        if document is not None:
            _check_json(document, refs, tally)
        for file_attrs, text in _anchors(page):
            href = file_attrs.get("href") or ""
            url, _, fragment = urllib.parse.urljoin(project_url, href).partition("#")
            name = urllib.parse.unquote(url.rsplit("/", 1)[-1])
            ref = refs.get(name)
            if ref is None or name in seen:
                continue
            seen.add(name)
            target = _local(site, url)
            if (
                ref.project == project
                and text == name
                and target is not None
                and target.is_file()
                and target.stat().st_size == ref.size
            ):
                tally.listed += 1
            if fragment == f"sha256={ref.sha256}":
                tally.sha256 += 1
            wanted = ref.requires_python
            if wanted is not None and file_attrs.get("data-requires-python") == wanted:
                tally.requires_python += 1
            sidecar = None if target is None else target.with_name(f"{name}.metadata")
            sidecar_bytes = sidecar.read_bytes() if sidecar and sidecar.is_file() else None
            if sidecar_bytes == ref.metadata:
                tally.sidecar += 1
            sidecar_hash = hashlib.sha256(sidecar_bytes).hexdigest() if sidecar_bytes else ""
            for key, exact, true in (
                ("data-dist-info-metadata", "dist_info", "dist_info_true"),
                ("data-core-metadata", "core", "core_true"),
            ):
                value = file_attrs.get(key)
                if _hash_of(value) == sidecar_hash:
                    setattr(tally, exact, getattr(tally, exact) + 1)
                elif value == "true":
                    setattr(tally, true, getattr(tally, true) + 1)
    total = len(refs)
    with_rp = sum(1 for r in refs.values() if r.requires_python is not None)

    def share(count: int, of: int = total, true: int = 0) -> str:
        if count == of and of:
            return "yes"
        if count:
            return f"{count}/{of}"
        return "true" if true else "no"

    return {
        "PEP 503": share(tally.listed),
        "#sha256": share(tally.sha256),
        "requires-python": share(tally.requires_python, with_rp),
        "658 .metadata": share(tally.sidecar),
        "658 dist-info": share(tally.dist_info, true=tally.dist_info_true),
        "714 core": share(tally.core, true=tally.core_true),
        "691 JSON": share(tally.json_files),
        "700 fields": share(tally.json_700),
    }


def _incremental_verdict(tool: IndexTool, work: Path, added: Path, total: int) -> str:
    """What the re-index's ``--json`` report says it read: the added wheel alone, or not."""
    try:
        report = json.loads((work / f"{tool.name}.log").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"no JSON report ({exc})"
    hashed, reused = report.get("hashed", []), report.get("reused", [])
    tool.report = {"hashed": hashed, "reused": len(reused)}
    ok = hashed == [added.name] and len(reused) == total - 1
    return f"{'OK' if ok else 'WRONG'}: hashed {hashed}, reused {len(reused)}"


# --------------------------------------------------------------------------- reporting

COVERAGE = (
    Column("tool", 15, key="tool"),
    Column("PEP 503", 7, key="PEP 503"),
    Column("#sha256", 7, key="#sha256"),
    Column("requires-python", 15, key="requires-python"),
    Column("658 .metadata", 13, key="658 .metadata"),
    Column("658 dist-info", 13, key="658 dist-info"),
    Column("714 core", 8, key="714 core"),
    Column("691 JSON", 8, key="691 JSON"),
    Column("700 fields", 10, key="700 fields"),
)


def targets(results: Mapping[str, Mapping[str, Any]]) -> list[Target]:
    figures = [
        Target(
            "incremental_vs_cold",
            "wheelpatch +1 / wheelpatch",
            harness.ratio(results, "wheelpatch +1", "wheelpatch"),
            limit=TARGET_INCREMENTAL,
            goal="incremental",
        )
    ]
    # The default copies every file into SITE (5.3 GB written); --link hard-links them, as
    # simple503 moves them and dumb-pypi leaves them where they are.
    for ours in ("wheelpatch", "wheelpatch --link"):
        for peer in READING_PEERS:
            if peer in results and ours in results:
                slug = f"{ours}_vs_{peer}".replace(" --", "_").replace("-", "_").replace("+", "_")
                figures.append(
                    Target(
                        slug,
                        f"{ours} / {peer}",
                        harness.ratio(results, ours, peer),
                        limit=TARGET_VS_PEER,
                        goal=f"faster_than_{peer}",
                    )
                )
    if "dumb-pypi" in results:
        figures.append(
            Target(
                "wheelpatch_vs_dumb_pypi",
                "wheelpatch / dumb-pypi",
                harness.ratio(results, "wheelpatch", "dumb-pypi"),
                note="(names only)",
            )
        )
    return figures


def markdown(
    results: Mapping[str, Mapping[str, Any]], coverage: Mapping[str, Mapping[str, str]]
) -> str:
    """The results as a markdown table, for the README."""
    features = [c.key for c in COVERAGE[1:]]
    lines = [
        "| tool | median s | peak RSS MiB | " + " | ".join(features) + " |",
        "|---|---:|---:|" + "---|" * len(features),
    ]
    for name, result in results.items():
        seconds = result.get("median_s")
        rss = result.get("max_rss_mib")
        cells = [coverage.get(name, {}).get(f, "-") for f in features]
        shown = "-" if seconds is None else f"{seconds:.2f}"
        memory = "-" if rss is None else f"{rss:.0f}"
        lines.append(f"| {name} | {shown} | {memory} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for dist in ("simple503", "simple-repository-generator", "dumb-pypi"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _load() -> str:
    """The load averages: the machine is shared, and a busy core slows the threaded tools most."""
    if not hasattr(os, "getloadavg"):
        return "unknown"
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min)"


# --------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = harness.base_parser(__doc__.splitlines()[0], per="tool")
    parser.set_defaults(repeat=3)
    parser.add_argument(
        "--wheels",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a directory of wheels to choose from (repeatable), instead of "
        + ", ".join(map(str, DEFAULT_DIRS)),
    )
    parser.add_argument(
        "--count",
        type=harness.at_least_0,
        default=DEFAULT_COUNT,
        help=f"how many wheels to index (default {DEFAULT_COUNT}; 0: all of them)",
    )
    parser.add_argument("--markdown", action="store_true", help="print a markdown table too")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [DUMB_PYPI_HELPER]:
        return dumb_pypi_hashed_main(argv[1:])
    args = harness.parse(_parser(), argv)
    bytecode = harness.bytecode_env(args.cache_dir)
    environment = harness.hermetic_env()
    host = {**harness.machine(["wheelpatch"]), **_versions()}
    chosen = choose_wheels(args.wheels or DEFAULT_DIRS, args.count)
    if len(chosen) < 2:
        print("nothing to benchmark: fewer than two wheels found")
        return 2
    log(f"reading and hashing the {len(chosen)} wheels chosen (the reference) ...")
    refs = read_references(chosen)
    wheels = [r.path for r in refs.values()]
    by_size = sorted(refs.values(), key=lambda r: (r.size, r.path.name))
    added = by_size[len(by_size) // 2].path
    size = sum(r.size for r in refs.values())
    command = harness.print_context(
        host,
        source=harness.source_state(),
        bytecode=bytecode,
        environment=environment,
        load=_load(),
        wheelhouse=f"{len(refs)} wheels, {len({r.project for r in refs.values()})} projects, "
        f"{size / 1e9:.2f} GB, from {', '.join(map(str, args.wheels or DEFAULT_DIRS))}",
        added=f"{added.name} ({added.stat().st_size / 1e6:.1f} MB), for the incremental re-index",
    )
    coverage: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        work = Path(tmp)
        house = work / "wheelhouse"
        house.mkdir()
        link_all(wheels, house)
        linked = [house / w.name for w in wheels]
        tools = build_tools(linked, house / added.name, work, args.repeat)
        by_name = {t.name: t for t in tools}

        def check(tool: Tool) -> str:
            index_tool = by_name[tool.name]
            coverage[tool.name] = check_site(index_tool, refs)
            verdict = ", ".join(f"{k} {v}" for k, v in coverage[tool.name].items())
            if tool.name == "wheelpatch +1":
                verdict = _incremental_verdict(index_tool, work, added, len(refs)) + "; " + verdict
            return verdict

        results = harness.measure(tools, args.repeat, work, "index", check, "coverage", width=17)
    figures = targets(results)
    print(f"\nwheelhouse: {len(refs)} wheels, {size / 1e9:.2f} GB; load after: {_load()}")
    harness.print_tools(results, COLUMNS)
    for figure in figures:
        print(figure.line())
    print("\nwhat each output covers (checked on the files written):")
    harness.print_table(COVERAGE, [{"tool": n, **coverage.get(n, {})} for n in results])
    if args.markdown:
        print("\n" + markdown(results, coverage))
    if args.json:
        report = {
            "command": command,
            "machine": host,
            "wheels": [str(w) for w in wheels],
            "added": str(added),
            "size": size,
            "results": results,
            "coverage": coverage,
            "incremental": by_name["wheelpatch +1"].report,
            **{t.key: t.value for t in figures},
            "targets": {t.goal: t.verdict for t in figures if t.limit is not None},
        }
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
