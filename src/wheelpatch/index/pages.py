"""The pages of a simple repository, rendered from what is known of its files. Pure and
deterministic: the same files give the same bytes.

- PEP 503 HTML: ``#sha256=`` on every link, ``data-requires-python`` escaped, ``data-yanked``,
  ``data-core-metadata`` and the older ``data-dist-info-metadata`` (PEP 658, PEP 714);
- PEP 691 JSON (``application/vnd.pypi.simple.v1+json``), api-version 1.1 with ``size`` and
  ``versions`` (PEP 700).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import quote

from .distribution import IndexedFile

__all__ = ["API_VERSION", "JSON_TYPE", "file_url", "project_pages", "root_pages"]

API_VERSION = "1.1"
#: The media type a client asks for (``Accept``) to get the JSON pages.
JSON_TYPE = "application/vnd.pypi.simple.v1+json"

_HEAD = (
    "<!DOCTYPE html>\n<html>\n  <head>\n"
    f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
    "    <title>{title}</title>\n  </head>\n  <body>\n    <h1>{title}</h1>\n"
)
_TAIL = "  </body>\n</html>\n"


def file_url(file: IndexedFile, base_url: str | None) -> str:
    """Where a project page links a file: relative to the page (``SITE/files/<project>/``), or
    under ``base_url`` when the ``files/`` tree is served from elsewhere. The file name is quoted
    (``+`` as ``%2B``, which object stores otherwise read as a space)."""
    path = f"{quote(file.project, safe='')}/{quote(file.filename, safe='')}"
    return f"{base_url.rstrip('/')}/{path}" if base_url else f"../../files/{path}"


def _json(document: object) -> bytes:
    return (json.dumps(document, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def root_pages(projects: Iterable[str]) -> tuple[bytes, bytes]:
    """The project list, as HTML and as JSON."""
    names = sorted(set(projects))
    body = "".join(
        f'    <a href="{quote(name, safe="")}/">{html.escape(name)}</a><br>\n' for name in names
    )
    page = _HEAD.format(title="Simple index") + body + _TAIL
    document = {"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for n in names]}
    return page.encode("utf-8"), _json(document)


def project_pages(
    project: str,
    files: Sequence[IndexedFile],
    base_url: str | None = None,
    yanked: Mapping[str, str] | None = None,
) -> tuple[bytes, bytes]:
    """One project's page, as HTML and as JSON; ``yanked`` maps file names to the reason."""
    yanked = yanked or {}
    ordered = sorted(files, key=lambda f: (f.version, f.filename))
    links = []
    entries = []
    for file in ordered:
        url = file_url(file, base_url)
        attributes = [f'href="{html.escape(url)}#sha256={file.sha256}"']
        if file.requires_python:
            attributes.append(f'data-requires-python="{html.escape(file.requires_python)}"')
        if file.filename in yanked:
            attributes.append(f'data-yanked="{html.escape(yanked[file.filename])}"')
        if file.metadata_sha256:
            metadata = f"sha256={file.metadata_sha256}"
            attributes.append(f'data-core-metadata="{metadata}"')
            attributes.append(f'data-dist-info-metadata="{metadata}"')
        links.append(f"    <a {' '.join(attributes)}>{html.escape(file.filename)}</a><br>\n")
        metadata_hash: dict[str, str] | bool = (
            {"sha256": file.metadata_sha256} if file.metadata_sha256 else False
        )
        entry: dict[str, object] = {
            "filename": file.filename,
            "url": url,
            "hashes": {"sha256": file.sha256},
        }
        if file.requires_python:
            entry["requires-python"] = file.requires_python
        entry["core-metadata"] = metadata_hash
        entry["dist-info-metadata"] = metadata_hash
        if file.filename in yanked:  # a reason, or true when none is given (PEP 691)
            entry["yanked"] = yanked[file.filename] or True
        else:
            entry["yanked"] = False
        entry["size"] = file.size
        entries.append(entry)
    page = _HEAD.format(title=f"Links for {html.escape(project)}") + "".join(links) + _TAIL
    versions = sorted({f.version for f in ordered})
    document = {
        "meta": {"api-version": API_VERSION},
        "name": project,
        "versions": [str(v) for v in versions],
        "files": entries,
    }
    return page.encode("utf-8"), _json(document)
