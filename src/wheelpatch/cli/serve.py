"""``wheelpatch serve`` and ``wheelpatch warm``: the proxy's command line, a thin adapter over
:mod:`wheelpatch.index.app` and :mod:`wheelpatch.index.service` (the ``serve`` extra)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TextIO

from ..errors import EXIT_CONFIG, EXIT_INPUT, EXIT_OK, ConfigError, WheelpatchError
from .terminal import Parser, dump, error

__all__ = ["add_commands", "run"]

_SERVE_EPILOG = """\
exit codes:
  0    stopped (Ctrl-C or SIGTERM)
  2    usage or configuration error (or the serve extra is not installed)

Clients point at http://HOST:PORT/simple/, for example:
  pip install --index-url http://127.0.0.1:8080/simple/ torch
  uv pip install --index-url http://127.0.0.1:8080/simple/ torch
"""
_WARM_EPILOG = """\
exit codes:
  0    every patched wheel the requirement admits is built and cached
  1    a wheel could not be built (the upstream refused or failed, the engine refused it), or
       the proxy lists none the requirement admits
  2    usage or configuration error (or the serve extra is not installed)
"""
_EXTRA = "wheelpatch serve needs its extra: pip install 'wheelpatch[serve]'"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="URL",
        required=True,
        help="a simple index to proxy (https://pypi.org/simple/, a pypiserver, devpi, a "
        "file:// index, a `wheelpatch index` site); repeatable: a project comes from the first "
        "upstream that has it. Credentials in the URL, or from netrc, go to that host only.",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        required=True,
        help="the pyproject.toml or wheelpatch.toml whose [tool.wheelpatch] overrides apply",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=None,
        help="where pages, patched METADATA and patched wheels are kept; workers and replicas "
        "may share it (default: ~/.cache/wheelpatch/serve)",
    )
    parser.add_argument(
        "--cache-size",
        metavar="SIZE",
        default=None,
        help="bound the cache (e.g. 20G; binary units); least recently used wheels go first, "
        "never one being served (default: unbounded)",
    )
    parser.add_argument(
        "--links",
        choices=("upstream", "proxy"),
        default="upstream",
        help="where pages of projects without an override link their files: at the upstream "
        "(no load on the proxy; the default) or through the proxy (for clients that can reach "
        "only it). Patched wheels always come from the proxy.",
    )
    parser.add_argument(
        "--unpatched",
        choices=("hide", "list"),
        default="hide",
        help="an overridden project's files that cannot be patched (sdists, versions outside "
        "`versions`): left off its page so no resolver picks one by accident (hide, the "
        "default), or listed as they are (list)",
    )
    parser.add_argument(
        "--page-ttl",
        metavar="SECONDS",
        default="300",
        help="use an upstream page this long before asking again (default: 300)",
    )
    parser.add_argument(
        "--stale-age",
        metavar="SECONDS",
        default="86400",
        help="when the upstream cannot be reached, serve pages fetched up to this long ago "
        "(default: 86400)",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        default="30",
        help="of each upstream request (default: 30)",
    )
    parser.add_argument(
        "--retries",
        metavar="N",
        default="2",
        help="connection retries per upstream request (default: 2)",
    )


def add_commands(commands: argparse._SubParsersAction[Parser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve a package index that patches upstream wheels on the fly",
        description="Serve a simple repository (PEP 503 HTML and PEP 691 JSON, PEP 658 "
        "metadata) that proxies the --upstream indexes: projects without an override pass "
        "through unchanged, and each wheel an override applies to is listed as the patched "
        "wheel (its labelled name, its patched METADATA worked out from range reads of the "
        "upstream wheel), built on first download by the engine of `wheelpatch patch` and "
        "cached. Binds 127.0.0.1 unless told otherwise.",
        epilog=_SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to bind (default: 8080)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the cache directory (default: 1)",
    )
    serve.add_argument(
        "--eager",
        action="store_true",
        help="build the patched wheels of a page as soon as it is served, so that lockers "
        "(uv lock, poetry lock, pdm lock) see their hashes",
    )
    serve.add_argument(
        "--accel-redirect",
        metavar="PATH",
        default=None,
        help="behind nginx: answer each download of a stored wheel with an X-Accel-Redirect "
        "to PATH<key>/<file>, so that nginx sends the file itself (sendfile); PATH is an "
        "`internal` location aliased to CACHE_DIR/files/entries/ (see the README)",
    )

    warm = commands.add_parser(
        "warm",
        help="build and cache the patched wheels a requirement admits, ahead of clients",
        description="Build into the cache directory the patched wheels of every version "
        "REQUIREMENT admits (e.g. torch==2.0.1), so that a `wheelpatch serve` sharing that "
        "directory lists their hashes from the first page. Prints one line per wheel: its "
        "name and sha256.",
        epilog=_WARM_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    warm.add_argument("requirements", nargs="+", metavar="REQUIREMENT")
    _common(warm)
    warm.add_argument("--json", action="store_true", help="print a JSON report on stdout")


def run(args: argparse.Namespace, out: TextIO) -> int:
    try:
        from ..index.settings import ServeSettings  # noqa: PLC0415 - the serve extra
    except ImportError as exc:
        error(f"{_EXTRA} ({exc.name} is missing)")
        return EXIT_CONFIG
    try:
        settings = ServeSettings.create(
            upstreams=args.upstream,
            config=args.config,
            cache_dir=args.cache_dir,
            cache_size=args.cache_size,
            links=args.links,
            unpatched=args.unpatched,
            page_ttl=args.page_ttl,
            stale_age=args.stale_age,
            timeout=args.timeout,
            retries=args.retries,
            eager=getattr(args, "eager", False),
            accel_redirect=getattr(args, "accel_redirect", None),
        )
    except ConfigError as exc:
        for line in exc.errors:
            error(line)
        return EXIT_CONFIG
    if args.command == "warm":
        return _warm(settings, args, out)
    return _serve(settings, args)


def _logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    root = logging.getLogger("wheelpatch")
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _serve(settings: object, args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415 - the serve extra

    from ..index.app import create_app  # noqa: PLC0415
    from ..index.settings import ServeSettings  # noqa: PLC0415

    assert isinstance(settings, ServeSettings)
    if args.workers < 1:
        error(f"--workers: {args.workers} is not a number of processes >= 1")
        return EXIT_CONFIG
    _logging()
    common = {"host": args.host, "port": args.port, "access_log": False, "log_level": "warning"}
    if args.workers == 1:
        uvicorn.run(create_app(settings), **common)
    else:
        # Workers are new processes: they read the same settings from the environment.
        os.environ.update(settings.environ(args.upstream))
        uvicorn.run(
            "wheelpatch.index.app:create_app",
            factory=True,
            workers=args.workers,
            **common,
        )
    return EXIT_OK


def _warm(settings: object, args: argparse.Namespace, out: TextIO) -> int:
    from ..index.service import ProxyService  # noqa: PLC0415
    from ..index.settings import ServeSettings  # noqa: PLC0415

    assert isinstance(settings, ServeSettings)
    service = ProxyService(settings)
    report: list[dict[str, object]] = []
    status = EXIT_OK
    try:
        for requirement in args.requirements:
            try:
                built = service.warm(requirement)
            except WheelpatchError as exc:
                error(f"{requirement}: {exc}")
                report.append({"requirement": requirement, "error": str(exc)})
                status = EXIT_INPUT
                continue
            for entry in built:
                report.append(
                    {
                        "requirement": requirement,
                        "filename": entry.path.name,
                        "sha256": entry.sha256,
                        "size": entry.size,
                    }
                )
                if not args.json:
                    out.write(f"{entry.path.name} sha256={entry.sha256}\n")
    finally:
        service.close()
    if args.json:
        dump(out, report)
    return status
