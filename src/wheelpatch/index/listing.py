"""A project's page of a simple repository as typed values: parsed from an upstream's HTML or
PEP 691 JSON, and rendered back in either form.

Parsing uses mousebender, which knows PEP 503, 592, 629, 658, 691 and 714. What it leaves out is
read here from the same page: PEP 740 provenance links (``data-provenance``), PEP 792 project
status (``pypi:project-status`` meta tags) and, for JSON, every key this module does not model,
which is carried through as it came so that a pass-through page loses nothing.
"""

from __future__ import annotations

import contextlib
import html
import html.parser
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

from mousebender import simple
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

__all__ = [
    "HTML_TYPE",
    "JSON_TYPE",
    "ListedFile",
    "Listing",
    "ListingError",
    "parse_listing",
    "parse_project_list",
    "render_html",
    "render_json",
    "render_project_list",
]

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
_HTML_TYPES = ("text/html", HTML_TYPE)
#: File keys rendered from fields; any other key of an upstream's JSON is kept in ``extra``.
_FILE_KEYS = frozenset(
    {
        "filename",
        "url",
        "hashes",
        "requires-python",
        "core-metadata",
        "dist-info-metadata",
        "data-dist-info-metadata",
        "yanked",
        "size",
        "upload-time",
        "provenance",
        "gpg-sig",
    }
)
_PAGE_KEYS = frozenset({"meta", "name", "files", "versions", "project-status"})


class ListingError(ValueError):
    """An upstream page that is not a simple repository page this module can read."""


@dataclass(frozen=True, slots=True)
class ListedFile:
    """One file link of a project page. ``url`` is absolute (resolved against the page's URL)."""

    filename: str
    url: str
    hashes: Mapping[str, str]
    requires_python: str | None = None
    #: False, True (yanked without a reason) or the reason.
    yanked: bool | str = False
    #: PEP 658/714: False (no sidecar), True (a sidecar of unknown hash) or its hashes.
    core_metadata: bool | Mapping[str, str] = False
    size: int | None = None
    upload_time: str | None = None
    #: PEP 740: where the file's provenance (attestations) is.
    provenance: str | None = None
    gpg_sig: bool | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("sha256")


@dataclass(frozen=True, slots=True)
class Listing:
    """A project page: its files in the upstream's order, and what the page says of the project."""

    name: NormalizedName
    files: tuple[ListedFile, ...]
    api_version: str = "1.0"
    #: PEP 792: "active", "archived", "quarantined" or "deprecated", and an optional reason.
    status: str | None = None
    status_reason: str | None = None
    #: PEP 700's ``versions`` as the upstream listed them; None: worked out from the files.
    versions: tuple[str, ...] | None = None
    #: JSON top-level keys not modelled here (PEP 708's ``tracks`` and ``alternate-locations``).
    extra: Mapping[str, Any] = field(default_factory=dict)

    def with_files(self, files: Sequence[ListedFile]) -> Listing:
        return replace(self, files=tuple(files))


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def parse_listing(body: bytes, content_type: str, name: str, page_url: str) -> Listing:
    """Read a project page as an upstream served it; relative links are resolved against
    ``page_url``. Raises :class:`ListingError` for anything else."""
    media = _media_type(content_type)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ListingError(f"the page is not UTF-8 (byte {exc.start})") from None
    if media == JSON_TYPE or media == "application/json":
        return _from_json(text, name, page_url)
    if media in _HTML_TYPES:
        return _from_html(text, name, page_url)
    raise ListingError(f"unexpected content type {content_type!r}")


def _api_version(value: Any) -> str:
    if not isinstance(value, str) or value.count(".") != 1:
        raise ListingError(f"meta.api-version {value!r} is not MAJOR.MINOR")
    major, minor = value.split(".")
    if not (major.isdigit() and minor.isdigit()):
        raise ListingError(f"meta.api-version {value!r} is not MAJOR.MINOR")
    if major != "1":
        raise ListingError(f"api-version {value} is not supported (only 1.x)")
    return value


def _from_json(text: str, name: str, page_url: str) -> Listing:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", simple.APIVersionWarning)
            document = simple.parse_project_details(text, JSON_TYPE, name)
    except (ValueError, simple.UnsupportedAPIVersion) as exc:
        raise ListingError(f"not a PEP 691 project page ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("files"), list):
        raise ListingError("not a PEP 691 project page (no files list)")
    data: dict[str, Any] = dict(document)
    meta = data.get("meta")
    api = _api_version(meta.get("api-version") if isinstance(meta, dict) else None)
    files = tuple(_json_file(entry, page_url, i) for i, entry in enumerate(data["files"]))
    status = reason = None
    raw_status = data.get("project-status")
    if isinstance(raw_status, dict):
        status = _optional_str(raw_status.get("status"), "project-status.status")
        reason = _optional_str(raw_status.get("reason"), "project-status.reason")
    extra = {k: v for k, v in data.items() if k not in _PAGE_KEYS}
    versions = data.get("versions")
    listed = tuple(str(v) for v in versions) if isinstance(versions, list) else None
    return Listing(canonicalize_name(name), files, api, status, reason, listed, extra)


def _optional_str(value: Any, key: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ListingError(f"{key} {value!r} is not a string")


def _hashes(value: Any, key: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ListingError(f"{key} {value!r} is not a mapping of hash names to values")
    return {k.lower(): v.lower() for k, v in value.items()}


def _json_file(entry: Any, page_url: str, index: int) -> ListedFile:
    where = f"files[{index}]"
    if not isinstance(entry, dict):
        raise ListingError(f"{where} is not an object")
    filename, url = entry.get("filename"), entry.get("url")
    if not isinstance(filename, str) or not isinstance(url, str) or not filename:
        raise ListingError(f"{where} has no filename or url")
    metadata: Any = entry.get("core-metadata", entry.get("dist-info-metadata", False))
    if not isinstance(metadata, bool):
        metadata = _hashes(metadata, f"{where}.core-metadata")
    yanked = entry.get("yanked", False)
    if not isinstance(yanked, (bool, str)):
        raise ListingError(f"{where}.yanked {yanked!r} is neither a boolean nor a reason")
    size = entry.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise ListingError(f"{where}.size {size!r} is not a whole number of bytes")
    try:
        return _listed(entry, page_url, where, filename, url, metadata, yanked, size)
    except ValueError as exc:  # a link urljoin cannot read (a hostile page)
        raise ListingError(f"{where}.url {url!r} is not a URL ({exc})") from None


def _listed(
    entry: dict[str, Any],
    page_url: str,
    where: str,
    filename: str,
    url: str,
    metadata: bool | dict[str, str],
    yanked: bool | str,
    size: int | None,
) -> ListedFile:
    provenance = entry.get("provenance")
    gpg_sig = entry.get("gpg-sig")
    return ListedFile(
        filename=filename,
        url=urljoin(page_url, url),
        hashes=_hashes(entry.get("hashes", {}), f"{where}.hashes"),
        requires_python=_optional_str(entry.get("requires-python"), f"{where}.requires-python")
        or None,
        yanked=yanked,
        core_metadata=metadata,
        size=size,
        upload_time=_optional_str(entry.get("upload-time"), f"{where}.upload-time"),
        provenance=None
        if provenance is None
        else urljoin(page_url, _optional_str(provenance, f"{where}.provenance") or ""),
        gpg_sig=gpg_sig if isinstance(gpg_sig, bool) else None,
        extra={k: v for k, v in entry.items() if k not in _FILE_KEYS},
    )


class _ExtrasParser(html.parser.HTMLParser):
    """What mousebender's HTML reading leaves out: ``data-provenance`` by link, and the PEP 792
    meta tags."""

    def __init__(self) -> None:
        super().__init__()
        self.provenance: dict[str, str] = {}
        self.meta: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "meta" and values.get("name") and values.get("content") is not None:
            self.meta[str(values["name"])] = str(values["content"])
        elif tag == "a" and values.get("href") and values.get("data-provenance"):
            self.provenance[_link_filename(str(values["href"]))] = str(values["data-provenance"])


def _link_filename(href: str) -> str:
    return unquote(urlsplit(href).path.rpartition("/")[2])


def _from_html(text: str, name: str, page_url: str) -> Listing:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", simple.APIVersionWarning)
            document = simple.from_project_details_html(text, name)
    except (ValueError, simple.UnsupportedAPIVersion) as exc:
        raise ListingError(f"not a PEP 503 project page ({exc})") from None
    extras = _ExtrasParser()
    extras.feed(text)
    files = []
    for index, entry in enumerate(document["files"]):
        data: dict[str, Any] = dict(entry)
        provenance = extras.provenance.get(data["filename"])
        if provenance is not None:
            data["provenance"] = provenance
        files.append(_json_file(data, page_url, index))
    api = extras.meta.get("pypi:repository-version", "1.0")
    return Listing(
        canonicalize_name(name),
        tuple(files),
        _api_version(api),
        extras.meta.get("pypi:project-status"),
        extras.meta.get("pypi:project-status-reason"),
    )


def parse_project_list(body: bytes, content_type: str) -> list[str]:
    """The project names of an index's root page (HTML or JSON)."""
    media = _media_type(content_type)
    try:
        text = body.decode("utf-8")
        if media == JSON_TYPE or media == "application/json":
            document = json.loads(text)
            return [str(p["name"]) for p in document["projects"]]
        if media in _HTML_TYPES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", simple.APIVersionWarning)
                index = simple.from_project_index_html(text)
            return [str(p["name"]) for p in index["projects"]]
    except (ValueError, KeyError, TypeError, simple.UnsupportedAPIVersion) as exc:
        raise ListingError(f"not a simple repository index ({exc})") from None
    raise ListingError(f"unexpected content type {content_type!r}")


# -- rendering ---------------------------------------------------------------------------------


def _page_version(listing: Listing) -> str:
    """The api-version a rendered page can claim: at least 1.1 when every file's size is known
    (PEP 700 makes ``size`` and ``versions`` part of 1.1), else 1.0, never more than the
    upstream said (its own keys are passed through)."""
    sized = all(f.size is not None for f in listing.files)
    major_minor = tuple(int(p) for p in listing.api_version.split("."))
    if not sized:
        return "1.0"
    return listing.api_version if major_minor >= (1, 1) else "1.1"


def _head(title: str, version: str, listing: Listing | None = None) -> str:
    metas = [f'    <meta name="pypi:repository-version" content="{version}">\n']
    if listing is not None and listing.status is not None:
        metas.append(
            f'    <meta name="pypi:project-status" content="{html.escape(listing.status)}">\n'
        )
        if listing.status_reason is not None:
            reason = html.escape(listing.status_reason)
            metas.append(f'    <meta name="pypi:project-status-reason" content="{reason}">\n')
    title = html.escape(title)
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        + "".join(metas)
        + f"    <title>{title}</title>\n  </head>\n  <body>\n    <h1>{title}</h1>\n"
    )


_TAIL = "  </body>\n</html>\n"


def _fragment(hashes: Mapping[str, str]) -> str:
    for name in ("sha256", *sorted(hashes)):
        if name in hashes:
            return f"#{name}={hashes[name]}"
    return ""


def _metadata_value(value: bool | Mapping[str, str]) -> str:
    if isinstance(value, bool):
        return "true"
    return _fragment(value)[1:] or "true"


def render_html(listing: Listing) -> bytes:
    links = []
    for file in listing.files:
        attributes = [f'href="{html.escape(file.url + _fragment(file.hashes))}"']
        if file.requires_python:
            attributes.append(f'data-requires-python="{html.escape(file.requires_python)}"')
        if file.yanked is not False:
            reason = "" if file.yanked is True else str(file.yanked)
            attributes.append(f'data-yanked="{html.escape(reason)}"')
        if file.core_metadata is not False:
            value = _metadata_value(file.core_metadata)
            attributes.append(f'data-core-metadata="{html.escape(value)}"')
            attributes.append(f'data-dist-info-metadata="{html.escape(value)}"')
        if file.gpg_sig is not None:
            attributes.append(f'data-gpg-sig="{"true" if file.gpg_sig else "false"}"')
        if file.provenance:
            attributes.append(f'data-provenance="{html.escape(file.provenance)}"')
        links.append(f"    <a {' '.join(attributes)}>{html.escape(file.filename)}</a><br>\n")
    head = _head(f"Links for {listing.name}", _page_version(listing), listing)
    return (head + "".join(links) + _TAIL).encode("utf-8")


def _json_bytes(document: object) -> bytes:
    return (json.dumps(document, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def _versions(listing: Listing) -> list[str]:
    if listing.versions is not None:
        return list(listing.versions)
    found: set[Version] = set()
    for file in listing.files:
        with contextlib.suppress(InvalidWheelFilename, InvalidSdistFilename):
            if file.filename.endswith(".whl"):
                found.add(parse_wheel_filename(file.filename)[1])
            else:
                found.add(parse_sdist_filename(file.filename)[1])
    return [str(v) for v in sorted(found)]


def render_json(listing: Listing) -> bytes:
    """The PEP 691 page; ``versions`` (PEP 700) is listed on pages of api-version 1.1 and up."""
    version = _page_version(listing)
    entries = []
    for file in listing.files:
        metadata: bool | dict[str, str] = (
            file.core_metadata if isinstance(file.core_metadata, bool) else dict(file.core_metadata)
        )
        entry: dict[str, Any] = {"filename": file.filename, "url": file.url}
        entry["hashes"] = dict(file.hashes)
        if file.requires_python:
            entry["requires-python"] = file.requires_python
        entry["core-metadata"] = metadata
        entry["dist-info-metadata"] = metadata
        entry["yanked"] = file.yanked
        if file.size is not None:
            entry["size"] = file.size
        if file.upload_time is not None:
            entry["upload-time"] = file.upload_time
        if file.gpg_sig is not None:
            entry["gpg-sig"] = file.gpg_sig
        if file.provenance is not None:
            entry["provenance"] = file.provenance
        entry.update(file.extra)
        entries.append(entry)
    document: dict[str, Any] = {"meta": {"api-version": version}, "name": listing.name}
    if listing.status is not None:
        status = {"status": listing.status}
        if listing.status_reason is not None:
            status["reason"] = listing.status_reason
        document["project-status"] = status
    if version != "1.0":
        document["versions"] = _versions(listing)
    document["files"] = entries
    document.update(listing.extra)
    return _json_bytes(document)


def render_project_list(names: Sequence[str]) -> tuple[bytes, bytes]:
    """The root page, as HTML and as JSON."""
    ordered = sorted({canonicalize_name(n) for n in names})
    body = "".join(
        f'    <a href="{quote(name, safe="")}/">{html.escape(name)}</a><br>\n' for name in ordered
    )
    page = (_head("Simple index", "1.1") + body + _TAIL).encode("utf-8")
    document = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in ordered]}
    return page, _json_bytes(document)
