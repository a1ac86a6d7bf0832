"""The HTTP face of the proxy: a Starlette application, an adapter like the CLI. It checks the
request, asks :class:`~wheelpatch.index.service.ProxyService`, and turns errors into a status
with a one-line body.

Run it with ``wheelpatch serve``, or under any ASGI server, one process or many sharing a cache
directory: ``uvicorn --factory wheelpatch.index.app:create_app`` (settings from the
``WHEELPATCH_SERVE_*`` environment variables).

- ``GET /simple/`` and ``/simple/<project>/``: pages in PEP 503 HTML or PEP 691 JSON, chosen by
  ``Accept`` (or ``?format=``); a name that is not normalized is redirected to the one that is.
- ``GET /files/<project>/<file>``: a patched wheel (``Range``, ``ETag``, ``If-None-Match``), its
  ``.metadata`` sidecar, or, with ``links="proxy"``, an upstream file passed through.
- ``GET /health``: 200 and what the proxy serves from.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import anyio
import anyio.to_thread
from packaging.utils import canonicalize_name
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..errors import WheelpatchError
from .cache import Lease
from .listing import HTML_TYPE, JSON_TYPE, render_html, render_json, render_project_list
from .relay import Relay
from .service import NotFound, ProxyService
from .settings import ServeSettings
from .upstream import UpstreamError

__all__ = ["choose_media_type", "create_app"]

_log = logging.getLogger("wheelpatch.serve")
#: Threads for downloads (most of them waiting for a build or for the upstream), apart from the
#: pool that answers pages.
_DOWNLOAD_THREADS = 64
_PROJECT = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_OFFERED = (JSON_TYPE, HTML_TYPE, "text/html")
_WILDCARDS = {"*/*": "text/html", "application/*": JSON_TYPE, "text/*": "text/html"}
_LATEST = {
    "application/vnd.pypi.simple.latest+json": JSON_TYPE,
    "application/vnd.pypi.simple.latest+html": HTML_TYPE,
}


def choose_media_type(accept: str | None, format_: str | None = None) -> str | None:
    """The page format to answer with (PEP 691): ``?format=`` first, then the ``Accept``
    alternative of highest quality that is offered (on a tie, the first listed); HTML when the
    client says nothing; None when nothing it accepts is offered (406)."""
    if format_:
        wanted = _LATEST.get(format_, format_)
        return wanted if wanted in _OFFERED else None
    if not accept or not accept.strip():
        return "text/html"
    best: tuple[float, int, str] | None = None
    for position, item in enumerate(accept.split(",")):
        media, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        media = _LATEST.get(media, _WILDCARDS.get(media, media))
        if media not in _OFFERED or quality <= 0:
            continue
        if best is None or quality > best[0]:
            best = (quality, position, media)
    return best[2] if best else None


def _page_response(html: bytes, json: bytes, request: Request, headers: dict[str, str]) -> Response:
    media = choose_media_type(request.headers.get("accept"), request.query_params.get("format"))
    headers = {"vary": "Accept", **headers}
    if media is None:
        return PlainTextResponse(
            f"none of the accepted types is offered (offered: {', '.join(_OFFERED)})\n",
            status_code=406,
            headers=headers,
        )
    body = json if media == JSON_TYPE else html
    return Response(body, media_type=media, headers=headers)


def _error(exc: Exception) -> Response:
    if isinstance(exc, NotFound):
        status = 404
    elif isinstance(exc, UpstreamError):
        status = exc.status
    else:
        status = 502
    text = str(exc).replace("\n", " ")
    return PlainTextResponse(text + "\n", status_code=status)


def _valid_file_name(filename: str) -> bool:
    """A plain file name, nothing that could form another path. Which files exist is the
    page's to say (it lists ``.tar.bz2`` and ``.egg`` files too): the name is only looked up
    there, never joined to a path."""
    return not (
        not filename
        or "/" in filename
        or "\\" in filename
        or "\0" in filename
        or filename.startswith(".")
        or len(filename.encode("utf-8", "surrogatepass")) > 255
    )


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110's weak comparison, as If-None-Match uses: ``*``, or a listed tag equal to
    ``etag`` once any ``W/`` is set aside."""
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or etag in [t.removeprefix("W/") for t in tags]


async def _following(relay: Relay, threads: anyio.CapacityLimiter) -> AsyncIterator[bytes]:
    """A first download's body, read as the build makes it ready, on the download threads (so
    that waiting clients never take the threads that answer pages), a second at a time (so
    that a client that leaves is noticed)."""
    try:
        while True:
            chunk = await anyio.to_thread.run_sync(relay.next_chunk, limiter=threads)
            if chunk is None:
                continue
            if not chunk:
                return
            yield chunk
    finally:
        relay.close()


class _LeasedFile(FileResponse):
    """A cached file, held against eviction until its last byte is sent (or the client left).

    Sent in chunks of 2 MiB, not Starlette's 64 KiB: each chunk is a read on a worker thread and
    a message through the ASGI stack, which at 64 KiB took most of the time of a 554 MB wheel;
    larger chunks cost memory per client (eight at 4 MiB passed 150 MiB) for little speed."""

    chunk_size = 2 << 20

    def __init__(self, lease: Lease, **kwargs: Any) -> None:
        self._lease = lease
        super().__init__(lease.entry.path, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._lease.release()


def create_app(settings: ServeSettings | None = None) -> Starlette:
    """The ASGI application. Without ``settings``, they are read from the environment (an ASGI
    server's ``--factory``), and request lines are logged to stderr."""
    if settings is None:
        settings = ServeSettings.from_environ()
        if not logging.getLogger("wheelpatch").handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
            logging.getLogger("wheelpatch").addHandler(handler)
            logging.getLogger("wheelpatch").setLevel(logging.INFO)
    service = ProxyService(settings)
    downloads = anyio.CapacityLimiter(_DOWNLOAD_THREADS)

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "wheelpatch": __version__,
                "upstreams": [u.url for u in settings.upstreams],
            }
        )

    async def home(request: Request) -> Response:
        return RedirectResponse("simple/", status_code=301)

    async def root(request: Request) -> Response:
        try:
            names = await run_in_threadpool(service.root)
        except WheelpatchError as exc:
            return _error(exc)
        html, json = render_project_list(names)
        return _page_response(html, json, request, {})

    async def project(request: Request) -> Response:
        name = request.path_params["project"]
        normal = canonicalize_name(name)
        if not _PROJECT.fullmatch(normal):
            return PlainTextResponse(f"{name!r} is not a project name\n", status_code=404)
        if normal != name:
            return RedirectResponse(f"../{normal}/", status_code=301)
        try:
            page = await run_in_threadpool(service.page, normal)
        except WheelpatchError as exc:
            return _error(exc)
        headers = {"cache-control": f"max-age={int(min(settings.page_ttl, 600))}"}
        if page.stale:
            headers["warning"] = '110 wheelpatch "upstream unreachable: stale page"'
        html, json = render_html(page.listing), render_json(page.listing)
        return _page_response(html, json, request, headers)

    async def files(request: Request) -> Response:
        project_name, filename = request.path_params["project"], request.path_params["filename"]
        if canonicalize_name(project_name) != project_name or not _PROJECT.fullmatch(project_name):
            return PlainTextResponse(f"{project_name!r} is not a project name\n", 404)
        if not _valid_file_name(filename):
            return PlainTextResponse(f"{filename!r} is not a distribution file name\n", 404)
        project = canonicalize_name(project_name)
        try:
            if filename.endswith(".metadata"):
                data = await run_in_threadpool(
                    service.metadata, project, filename.removesuffix(".metadata")
                )
                return Response(data, media_type="application/octet-stream")
            # A plain GET of a wheel not built yet is answered while it is built.
            if request.method == "GET" and "range" not in request.headers:
                relay = await run_in_threadpool(service.first_download, project, filename)
                if relay is not None:
                    return StreamingResponse(
                        _following(relay, downloads),
                        headers={"content-length": str(relay.size)},
                        media_type="application/octet-stream",
                    )
            # Downloads wait for builds on threads of their own: a crowd waiting for one
            # build must not leave no thread to answer pages with.
            result = await anyio.to_thread.run_sync(
                service.file, project, filename, limiter=downloads
            )
        except WheelpatchError as exc:
            return _error(exc)
        if isinstance(result, Lease):
            etag = f'"{result.entry.sha256}"'
            if _matches(request.headers.get("if-none-match", ""), etag):
                result.release()
                return Response(status_code=304, headers={"etag": etag})
            if settings.accel_redirect is not None:
                # nginx in front sends the file itself; it opens it as soon as it reads this.
                stored = result.entry.path.relative_to(service.cache.stored).as_posix()
                result.release()
                return Response(
                    headers={
                        "etag": etag,
                        "x-accel-redirect": settings.accel_redirect + quote(stored),
                    },
                    media_type="application/octet-stream",
                )
            return _LeasedFile(
                result, headers={"etag": etag}, media_type="application/octet-stream"
            )
        headers = {} if result.length is None else {"content-length": str(result.length)}
        if request.method == "HEAD":
            await anyio.to_thread.run_sync(result.close)
            return Response(headers=headers, media_type="application/octet-stream")
        return StreamingResponse(
            iter(result), headers=headers, media_type="application/octet-stream"
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            service.close()

    async def no_route(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        said = "not found" if status == 404 else f"{request.method} is not served here"
        return PlainTextResponse(f"{request.url.path}: {said}\n", status_code=status)

    app = Starlette(
        exception_handlers={404: no_route, 405: no_route},
        routes=[
            Route("/", home),
            Route("/health", health),
            Route("/simple/", root),
            Route("/simple/{project}/", project),
            Route("/files/{project}/{filename}", files),
        ],
        lifespan=lifespan,
        middleware=[Middleware(_RequestLog)],
    )
    return app


class _RequestLog:
    """One log line per request: method, path, status, bytes and time."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        sent = 0
        answering = False

        async def record(message: Message) -> None:
            nonlocal status, sent, answering
            if message["type"] == "http.response.start":
                status = message["status"]
                answering = True
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, record)
        except Exception as exc:
            if not answering:
                raise
            # A response cut short on purpose (a first download whose wheel did not check
            # out): its length already tells the client; the log says why, in one line.
            _log.warning("%s %s cut short: %s", scope["method"], scope["path"], exc)
        finally:
            _log.info(
                "%s %s %d %d bytes %.0f ms",
                scope["method"],
                scope["path"],
                status,
                sent,
                (time.perf_counter() - started) * 1000,
            )
