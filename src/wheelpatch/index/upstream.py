"""The proxy's side facing its upstream indexes: project pages, PEP 658 sidecars, byte ranges
and whole files, over HTTP(S) (httpx, redirects followed) or from a ``file://`` simple index.

Only the configured indexes are asked for pages, and only the files their pages link to are ever
fetched: a client cannot make the proxy contact anything else. Credentials come from the index
URL (``https://user:token@host/simple/``) or from netrc, are sent only to the index's own host,
and never appear in a log line or a message (:func:`redact`).
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import netrc
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote, unquote, urlsplit, urlunsplit
from urllib.request import url2pathname

import httpx

from ..errors import WheelpatchError
from .listing import HTML_TYPE, JSON_TYPE, ListingError, parse_listing, parse_project_list
from .page_cache import CachedPage

__all__ = [
    "Download",
    "Upstream",
    "UpstreamClient",
    "UpstreamError",
    "redact",
]

_log = logging.getLogger(__name__)

#: What the proxy asks upstreams for: JSON first, HTML for those that have nothing else.
_ACCEPT = f"{JSON_TYPE}, {HTML_TYPE};q=0.2, text/html;q=0.01"
_CHUNK = 1 << 20
#: Cap on a page or sidecar read into memory.
_PAGE_CAP = 64 << 20


class UpstreamError(WheelpatchError):
    """An upstream could not give what was asked; ``status`` is the HTTP status to answer with
    (502: it answered wrongly, 503: it could not be reached)."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


def redact(url: str) -> str:
    """``url`` without its user name and password."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a malformed URL)"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True, slots=True)
class Upstream:
    """One configured index: its base URL (ending in ``/``) without credentials, and them."""

    url: str
    auth: tuple[str, str] | None = None

    @classmethod
    def parse(cls, text: str) -> Upstream:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https", "file") or (
            parts.scheme != "file" and not parts.hostname
        ):
            raise ValueError(f"{redact(text)!r} is not an http(s):// or file:// index URL")
        auth = None
        if parts.username is not None:
            auth = (unquote(parts.username), unquote(parts.password or ""))
        url = redact(text)
        return cls(url if url.endswith("/") else url + "/", auth)

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc


def _wire_url(url: str) -> str:
    """``url`` as httpx can send it: httpx takes a ``file:///path`` (no host) for a relative URL
    and drops its scheme, so a local file is asked for as ``file://localhost/path``."""
    if url.startswith("file:///"):
        return "file://localhost/" + url.removeprefix("file:///")
    return url


class _FileStream(httpx.SyncByteStream):
    """``length`` bytes of an open file, from where it stands, in chunks (a response body that
    ``iter_raw`` can stream, never the whole file in memory); the file is closed with it."""

    def __init__(self, handle: IO[bytes], length: int) -> None:
        self._handle = handle
        self._left = length

    def __iter__(self) -> Iterator[bytes]:
        while self._left > 0:
            chunk = self._handle.read(min(_CHUNK, self._left))
            if not chunk:
                return
            self._left -= len(chunk)
            yield chunk

    def close(self) -> None:
        self._handle.close()


class _FileTransport(httpx.BaseTransport):
    """``file://`` URLs as an HTTP server would answer them: a directory by its index.html,
    ``Range`` honoured, 404 for what is not there, and 403 for anything outside ``roots`` (the
    directories of the configured ``file://`` indexes: a page cannot make the proxy read the
    rest of its host's files)."""

    def __init__(self, roots: tuple[Path, ...]) -> None:
        self._roots = roots

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = Path(os.path.realpath(url2pathname(unquote(request.url.path))))
        if not any(path == root or path.is_relative_to(root) for root in self._roots):
            return httpx.Response(403, request=request)
        if path.is_dir():
            path = path / "index.html"
        try:
            handle = path.open("rb")
        except OSError:
            return httpx.Response(404, request=request)
        try:
            size = os.fstat(handle.fileno()).st_size
            media = "text/html" if path.suffix == ".html" else None
            media = media or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            wanted = request.headers.get("range")
            status, start, end = 200, 0, size
            headers = {"content-type": media}
            if wanted and wanted.startswith("bytes="):
                first, _, last = wanted[6:].partition("-")
                if first == "":
                    start, end = max(size - int(last), 0), size
                else:
                    start, end = int(first), min(int(last) + 1 if last else size, size)
                status = 206
                headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
                handle.seek(start)
            headers["content-length"] = str(end - start)
            headers["accept-ranges"] = "bytes"
            if request.method == "HEAD":
                handle.close()
                return httpx.Response(status, headers=headers, request=request)
        except BaseException:
            handle.close()
            raise
        return httpx.Response(
            status, headers=headers, stream=_FileStream(handle, end - start), request=request
        )


def _netrc_auth() -> httpx.Auth | None:
    where = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    if not os.path.isfile(where):
        return None
    try:
        netrc.netrc(where)
    except (netrc.NetrcParseError, OSError) as exc:
        _log.warning("%s: not used (%s)", where, exc)
        return None
    return httpx.NetRCAuth(where)


def file_root(upstream: Upstream) -> Path | None:
    """The directory a ``file://`` index may link files from: the one holding its ``simple/``
    directory (a ``wheelpatch index`` site's ``files/`` are beside it)."""
    if not upstream.url.startswith("file:"):
        return None
    index = Path(os.path.realpath(url2pathname(unquote(urlsplit(upstream.url).path))))
    return index.parent


class Download:
    """An upstream file being received: its announced length, its bytes as they arrive, and
    ``close()`` for when they are not wanted after all (a HEAD request)."""

    def __init__(self, length: int | None, chunks: Iterator[bytes], stack: contextlib.ExitStack):
        self.length = length
        self._chunks = chunks
        self._stack = stack

    def __iter__(self) -> Iterator[bytes]:
        with self._stack:  # errors while receiving become UpstreamErrors too
            yield from self._chunks

    def close(self) -> None:
        self._stack.close()


class UpstreamClient:
    """One HTTP client for all upstreams, safe to share between threads.

    Pages, metadata files and ranges are read whole into memory, so each is capped in size and
    in time (``timeout`` from the first byte to the last); downloads are streamed, ``timeout``
    bounding each wait for data."""

    def __init__(self, upstreams: tuple[Upstream, ...], timeout: float, retries: int) -> None:
        self.upstreams = upstreams
        self._timeout = timeout
        self._hosts = frozenset(u.host for u in upstreams if not u.url.startswith("file:"))
        self._netrc = _netrc_auth()
        roots = tuple(root for root in map(file_root, upstreams) if root is not None)
        self._client = httpx.Client(
            follow_redirects=True,
            timeout=httpx.Timeout(timeout),
            transport=httpx.HTTPTransport(retries=retries),
            mounts={"file://": _FileTransport(roots)},
            headers={"user-agent": "wheelpatch-serve"},
        )

    def close(self) -> None:
        self._client.close()

    def _auth(self, url: str) -> httpx.Auth | tuple[str, str] | None:
        """Credentials for ``url``: an upstream's own, on its own host; netrc's, on the hosts of
        the upstreams only (not the hosts their pages link to)."""
        host = urlsplit(url).netloc
        for upstream in self.upstreams:
            if upstream.host == host and upstream.auth is not None:
                return upstream.auth
        return self._netrc if host in self._hosts else None

    @contextlib.contextmanager
    def _stream(
        self, url: str, headers: dict[str, str], *, method: str = "GET", decode: bool = False
    ) -> Iterator[httpx.Response]:
        """One request whose body is read as it arrives. Files are never decoded (the bytes
        hashed are the bytes sent); pages may be."""
        scheme = urlsplit(url).scheme
        if scheme not in ("http", "https", "file"):
            raise UpstreamError(f"{redact(url)}: not an http(s) or file URL; not followed")
        if not decode:
            headers = {"accept-encoding": "identity", **headers}
        with (
            _reaching(url),
            self._client.stream(
                method, _wire_url(url), headers=headers, auth=self._auth(url)
            ) as response,
        ):
            yield response

    def _fetch(
        self, url: str, headers: dict[str, str], cap: int, *, decode: bool = True
    ) -> tuple[httpx.Response, bytes]:
        """A response and its body (empty unless 200 or 206), at most ``cap`` bytes received
        within ``timeout`` seconds."""
        deadline = time.monotonic() + self._timeout
        with self._stream(url, headers, decode=decode) as response:
            if response.status_code not in (200, 206):
                return response, b""
            body = bytearray()
            chunks = response.iter_bytes(_CHUNK) if decode else response.iter_raw(_CHUNK)
            for chunk in chunks:
                body += chunk
                if len(body) > cap:
                    raise UpstreamError(f"{redact(url)}: over {cap} bytes; not read further")
                if time.monotonic() > deadline:
                    raise UpstreamError(f"{redact(url)}: timed out", 503)
        return response, bytes(body)

    def _page(self, url: str) -> tuple[httpx.Response, bytes] | None:
        """An index page, None for a 404; any status but 200 and 404 is an error."""
        response, body = self._fetch(url, {"accept": _ACCEPT}, _PAGE_CAP)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise UpstreamError(
                f"{redact(url)}: answered {response.status_code}",
                503 if response.status_code >= 500 else 502,
            )
        return response, body

    def project(self, name: str) -> CachedPage | None:
        """The project's page from the first upstream that has it (in the order configured, as
        uv's default index strategy does: a later index cannot shadow an earlier one's
        project), or None when none has it. The page is checked to be one :func:`parse_listing`
        reads before it is returned."""
        for upstream in self.upstreams:
            url = upstream.url + quote(name, safe="") + "/"
            found = self._page(url)
            if found is None:
                continue
            response, body = found
            page = CachedPage(
                body,
                response.headers.get("content-type", "text/html"),
                redact(str(response.url)),
                upstream.url,
                time.time(),
            )
            try:
                parse_listing(page.body, page.content_type, name, page.url)
            except ListingError as exc:
                raise UpstreamError(f"{redact(url)}: {exc}") from None
            return page
        return None

    def projects(self) -> list[str]:
        """The names every upstream's project list holds, merged."""
        names: set[str] = set()
        for upstream in self.upstreams:
            found = self._page(upstream.url)
            if found is None:
                raise UpstreamError(f"{upstream.url}: answered 404")
            response, body = found
            try:
                names.update(
                    parse_project_list(body, response.headers.get("content-type", "text/html"))
                )
            except ListingError as exc:
                raise UpstreamError(f"{upstream.url}: {exc}") from None
        return sorted(names)

    def read(self, url: str, cap: int = _PAGE_CAP) -> bytes:
        """A small file (a PEP 658 metadata file) in memory."""
        response, body = self._fetch(url, {}, cap, decode=False)
        if response.status_code != 200:
            raise UpstreamError(f"{redact(url)}: answered {response.status_code}")
        return body

    def read_range(self, url: str, offset: int, length: int) -> bytes | None:
        """Bytes ``offset`` to ``offset + length`` of the file at ``url``; None when the server
        does not do ranges (it answered 200: the body is not read)."""
        headers = {"range": f"bytes={offset}-{offset + length - 1}"}
        deadline = time.monotonic() + self._timeout
        with self._stream(url, headers) as response:
            if response.status_code == 200:
                return None
            if response.status_code != 206:
                raise UpstreamError(f"{redact(url)}: answered {response.status_code}")
            data = bytearray()
            for chunk in response.iter_raw(_CHUNK):
                data += chunk
                if len(data) > length or time.monotonic() > deadline:
                    break
        if len(data) != length:
            raise UpstreamError(
                f"{redact(url)}: asked for {length} bytes at {offset}, got "
                f"{'more' if len(data) > length else len(data)}"
            )
        return bytes(data)

    def size(self, url: str) -> int | None:
        """The file's size, if its server answers range requests (None if not): a HEAD says
        both (``Accept-Ranges``) without sending the body; a server that refuses HEAD is asked
        for its first byte."""
        with self._stream(url, {}, method="HEAD") as response:
            status = response.status_code
            length = response.headers.get("content-length", "")
            ranges = response.headers.get("accept-ranges", "").strip().lower() == "bytes"
        if status == 200:
            return int(length) if ranges and length.isdigit() else None
        with self._stream(url, {"range": "bytes=0-0"}) as answer:
            if answer.status_code != 206:
                return None
            total = answer.headers.get("content-range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None

    def open(self, url: str) -> Download:
        """Start receiving the file at ``url``: its length (if the server says) is known at
        once, its bytes as they arrive."""
        stack = contextlib.ExitStack()
        try:
            response = stack.enter_context(self._stream(url, {}))
            if response.status_code != 200:
                raise UpstreamError(f"{redact(url)}: answered {response.status_code}")
        except BaseException:
            stack.close()
            raise
        length = response.headers.get("content-length", "")
        # As the transport yields them (64 KiB from the socket): gathering them into larger
        # pieces copies every byte once more, a quarter of the receiving time on a 554 MB wheel.
        return Download(int(length) if length.isdigit() else None, response.iter_raw(), stack)


@contextlib.contextmanager
def _reaching(url: str) -> Iterator[None]:
    """A request to ``url``: not reaching it is a 503, an answer that cannot be read a 502,
    each said in one line."""
    try:
        yield
    except httpx.TimeoutException:
        raise UpstreamError(f"{redact(url)}: timed out", 503) from None
    except httpx.TransportError as exc:
        raise UpstreamError(f"{redact(url)}: unreachable ({_reason(exc)})", 503) from None
    except httpx.HTTPError as exc:  # too many redirects, an undecodable body, ...
        raise UpstreamError(f"{redact(url)}: {_reason(exc)}") from None
    except ValueError as exc:  # a URL httpx cannot send (a hostile link)
        raise UpstreamError(f"{redact(url)}: cannot be fetched ({_reason(exc)})") from None


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
