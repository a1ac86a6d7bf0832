"""What the proxy lists for one project, planned from the upstream's page: pure, no I/O.

- A project without an override passes through: every file as the upstream listed it, its link
  pointing at the upstream (``links="upstream"``) or at the proxy (``links="proxy"``).
- A project with an override lists, for each upstream wheel whose version the override's
  ``versions`` admits, the patched wheel instead: its labelled file name, a link to the proxy,
  the patched METADATA's hash as ``core-metadata``, its size, and its sha256 once it is built.
- The rule for the rest of an overridden project's files (sdists, wheels of other versions, and
  wheels that cannot be patched): ``unpatched="hide"`` (the default) leaves them off the page, so
  that no resolver can pick an unpatched file by accident; ``unpatched="list"`` lists them as
  they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import quote

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from ..patch.plan import patched_filename
from ..rules.config import Override
from ..rules.labels import relabel
from .listing import ListedFile, Listing

__all__ = [
    "LinkMode",
    "Patched",
    "Served",
    "UnpatchedRule",
    "patch_candidates",
    "plan_page",
    "served_name",
]

LinkMode = Literal["upstream", "proxy"]
UnpatchedRule = Literal["hide", "list"]


@dataclass(frozen=True, slots=True)
class Patched:
    """What is known of one upstream wheel's patched file before (and after) it is built."""

    filename: str
    #: Known before it is built from range reads of the upstream wheel; from its metadata
    #: file alone (an upstream without ranges), only once it is built.
    size: int | None
    metadata_sha256: str
    requires_python: str | None
    #: Known once the wheel has been built; until then the page lists no hash for it.
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class Served:
    """A file name the proxy answers for, and where its bytes come from."""

    upstream: ListedFile
    #: True: built from ``upstream`` by the patch engine; False: the upstream's own bytes.
    patched: bool
    #: Why it cannot be served (a wheel the engine refused, say): the download answers 502.
    problem: str | None = None


def _proxy_url(project: str, filename: str) -> str:
    """Relative to ``/simple/<project>/``, so that any path prefix a reverse proxy adds holds."""
    return f"../../files/{quote(project, safe='')}/{quote(filename, safe='')}"


def served_name(file: ListedFile, override: Override) -> str | None:
    """The patched file name of an upstream wheel the override applies to; None for any other
    file (an sdist, a wheel of a version outside ``versions``, an unparsable name)."""
    if not file.filename.endswith(".whl"):
        return None
    try:
        _, version, _, _ = parse_wheel_filename(file.filename)
    except InvalidWheelFilename:
        return None
    if not override.applies_to(version):
        return None
    return patched_filename(file.filename, relabel(version, override.label, override.label_mode))


def patch_candidates(listing: Listing, override: Override | None) -> list[ListedFile]:
    """The upstream wheels of the page that the override turns into patched files."""
    if override is None:
        return []
    return [f for f in listing.files if served_name(f, override) is not None]


def plan_page(
    listing: Listing,
    override: Override | None,
    known: Mapping[str, Patched | str],
    *,
    links: LinkMode = "upstream",
    unpatched: UnpatchedRule = "hide",
) -> tuple[Listing, dict[str, Served]]:
    """The page the proxy serves, and what each file name on it (and each name a client may ask
    for) is served from. ``known`` maps upstream file names of :func:`patch_candidates` to what
    is known of their patched files, or to the reason they cannot be patched."""
    files: list[ListedFile] = []
    served: dict[str, Served] = {}

    def as_is(file: ListedFile) -> None:
        served[file.filename] = Served(file, patched=False)
        if links == "proxy":
            file = replace(file, url=_proxy_url(listing.name, file.filename))
        files.append(file)

    if override is None:
        for file in listing.files:
            as_is(file)
        return listing.with_files(files), served

    for file in listing.files:
        name = served_name(file, override)
        if name is None:
            if unpatched == "list":
                as_is(file)
            continue
        info = known.get(file.filename)
        if info is None or isinstance(info, str):
            # Not listed, but a client that asks for it is told why (502).
            served[name] = Served(file, patched=True, problem=info or "not planned")
            continue
        if info.filename in served:
            # Two upstream files, one patched name (local-version-mode "replace" over two
            # local labels, as torch's +cpu and +cu118): neither is listed, both are named.
            other = served[info.filename].upstream.filename
            problem = (
                f"{other} and {file.filename} would both be patched to {info.filename}; "
                f"set {override.key}.versions to tell them apart"
            )
            served[info.filename] = Served(file, patched=True, problem=problem)
            files = [f for f in files if f.filename != info.filename]
            continue
        served[info.filename] = Served(file, patched=True)
        files.append(
            ListedFile(
                filename=info.filename,
                url=_proxy_url(listing.name, info.filename),
                hashes={"sha256": info.sha256} if info.sha256 else {},
                requires_python=info.requires_python,
                yanked=file.yanked,
                core_metadata={"sha256": info.metadata_sha256},
                size=info.size,
                upload_time=file.upload_time,
            )
        )
    # The upstream's PEP 700 versions describe its files, not these.
    return replace(listing.with_files(files), versions=None), served
