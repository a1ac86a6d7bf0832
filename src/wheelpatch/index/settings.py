"""What a ``wheelpatch serve`` process is told: from its command line, or, for workers started by
uvicorn or gunicorn (``uvicorn --factory wheelpatch.index.app:create_app``), from
``WHEELPATCH_SERVE_*`` environment variables. Both are checked alike, every problem named by its
option or variable."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from ..errors import ConfigError
from ..rules.config import Config, load_config
from .cache import parse_size
from .proxy import LinkMode, UnpatchedRule
from .upstream import Upstream

__all__ = ["ENVIRONMENT", "ServeSettings"]

#: The environment variable of each setting, for worker processes.
ENVIRONMENT = {
    "upstreams": "WHEELPATCH_SERVE_UPSTREAMS",
    "config": "WHEELPATCH_SERVE_CONFIG",
    "cache_dir": "WHEELPATCH_SERVE_CACHE_DIR",
    "cache_size": "WHEELPATCH_SERVE_CACHE_SIZE",
    "links": "WHEELPATCH_SERVE_LINKS",
    "unpatched": "WHEELPATCH_SERVE_UNPATCHED",
    "page_ttl": "WHEELPATCH_SERVE_PAGE_TTL",
    "stale_age": "WHEELPATCH_SERVE_STALE_AGE",
    "timeout": "WHEELPATCH_SERVE_TIMEOUT",
    "retries": "WHEELPATCH_SERVE_RETRIES",
    "eager": "WHEELPATCH_SERVE_EAGER",
    "accel_redirect": "WHEELPATCH_SERVE_ACCEL_REDIRECT",
}


#: An absolute URL path ending in "/", of characters that need no quoting.
_ACCEL_PREFIX = re.compile(r"/(?:[A-Za-z0-9._~!$&'()*+,;=:@-]+/)*")


@dataclass(frozen=True, slots=True)
class ServeSettings:
    upstreams: tuple[Upstream, ...]
    config: Config
    config_path: Path | None
    cache_dir: Path
    cache_size: int | None = None
    links: LinkMode = "upstream"
    unpatched: UnpatchedRule = "hide"
    #: Seconds an upstream page is used without asking again.
    page_ttl: float = 300.0
    #: Seconds an upstream page may still be served while the upstream cannot be reached.
    stale_age: float = 86400.0
    timeout: float = 30.0
    retries: int = 2
    #: Build the patched wheels of a page as soon as it is served, so lockers see hashes.
    eager: bool = False
    #: The URL path of an nginx ``internal`` location aliased to the cache's stored files:
    #: downloads of stored wheels are answered with ``X-Accel-Redirect`` there, for nginx to
    #: send the file itself (sendfile) instead of this process.
    accel_redirect: str | None = None

    @classmethod
    def create(
        cls,
        *,
        upstreams: list[str],
        config: str | None,
        cache_dir: str | None,
        cache_size: str | None = None,
        links: str = "upstream",
        unpatched: str = "hide",
        page_ttl: str | float = 300.0,
        stale_age: str | float = 86400.0,
        timeout: str | float = 30.0,
        retries: str | int = 2,
        eager: bool = False,
        accel_redirect: str | None = None,
        names: Mapping[str, str] | None = None,
    ) -> ServeSettings:
        """Check every value; ``names`` says how each setting is called where it came from
        (the option, or the environment variable) for the messages. Raises ConfigError."""
        names = names or {
            **{key: f"--{key.replace('_', '-')}" for key in ENVIRONMENT},
            "upstreams": "--upstream",
        }
        errors: list[str] = []
        parsed: list[Upstream] = []
        for text in upstreams:
            try:
                parsed.append(Upstream.parse(text))
            except ValueError as exc:
                errors.append(f"{names['upstreams']}: {exc}")
        if not upstreams:
            errors.append(f"{names['upstreams']}: give at least one upstream index URL")
        size = None
        if cache_size:
            try:
                size = parse_size(cache_size)
            except ValueError as exc:
                errors.append(f"{names['cache_size']}: {exc}")
        if links not in ("upstream", "proxy"):
            errors.append(f"{names['links']}: {links!r} is neither 'upstream' nor 'proxy'")
        if unpatched not in ("hide", "list"):
            errors.append(f"{names['unpatched']}: {unpatched!r} is neither 'hide' nor 'list'")
        numbers: dict[str, float] = {}
        for key, value in (
            ("page_ttl", page_ttl),
            ("stale_age", stale_age),
            ("timeout", timeout),
            ("retries", retries),
        ):
            try:
                numbers[key] = float(value)
                if numbers[key] < 0 or numbers[key] != numbers[key]:
                    raise ValueError
            except ValueError:
                errors.append(f"{names[key]}: {value!r} is not a number of seconds >= 0")
        if accel_redirect is not None and not _ACCEL_PREFIX.fullmatch(accel_redirect):
            errors.append(
                f"{names['accel_redirect']}: {accel_redirect!r} is not a URL path that starts and "
                "ends with '/' (the nginx location of the cache's files, e.g. '/_wheelpatch/')"
            )
        if numbers.get("timeout") == 0:
            errors.append(f"{names['timeout']}: must be more than 0 seconds")
        loaded: Config | None = None
        path = Path(config) if config else None
        if path is not None:
            try:
                loaded = load_config(path)
            except ConfigError as exc:
                errors.extend(f"{names['config']}: {line}" for line in exc.errors)
        else:
            errors.append(
                f"{names['config']}: give the file with the [tool.wheelpatch] overrides to apply"
            )
        if errors:
            raise ConfigError(errors)
        assert loaded is not None
        return cls(
            upstreams=tuple(parsed),
            config=loaded,
            config_path=path.resolve() if path is not None else None,
            cache_dir=Path(cache_dir or _default_cache_dir()).resolve(),
            cache_size=size,
            links=cast("LinkMode", links),
            unpatched=cast("UnpatchedRule", unpatched),
            page_ttl=numbers["page_ttl"],
            stale_age=numbers["stale_age"],
            timeout=numbers["timeout"],
            retries=int(numbers["retries"]),
            eager=eager,
            accel_redirect=accel_redirect,
        )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ServeSettings:
        """The settings of a worker process, from ``WHEELPATCH_SERVE_*``."""
        env = os.environ if environ is None else environ

        def get(key: str, default: str) -> str:
            return env.get(ENVIRONMENT[key], default)

        return cls.create(
            upstreams=get("upstreams", "").split(),
            config=get("config", "") or None,
            cache_dir=get("cache_dir", "") or None,
            cache_size=get("cache_size", "") or None,
            links=get("links", "upstream"),
            unpatched=get("unpatched", "hide"),
            page_ttl=get("page_ttl", "300"),
            stale_age=get("stale_age", "86400"),
            timeout=get("timeout", "30"),
            retries=get("retries", "2"),
            eager=get("eager", "") not in ("", "0", "false", "no"),
            accel_redirect=get("accel_redirect", "") or None,
            names=ENVIRONMENT,
        )

    def environ(self, upstream_urls: list[str]) -> dict[str, str]:
        """The environment that gives a worker process these settings (credentials included:
        the environment of the server's own processes only)."""
        return {
            ENVIRONMENT["upstreams"]: " ".join(upstream_urls),
            ENVIRONMENT["config"]: str(self.config_path or ""),
            ENVIRONMENT["cache_dir"]: str(self.cache_dir),
            ENVIRONMENT["cache_size"]: str(self.cache_size or ""),
            ENVIRONMENT["links"]: self.links,
            ENVIRONMENT["unpatched"]: self.unpatched,
            ENVIRONMENT["page_ttl"]: repr(self.page_ttl),
            ENVIRONMENT["stale_age"]: repr(self.stale_age),
            ENVIRONMENT["timeout"]: repr(self.timeout),
            ENVIRONMENT["retries"]: str(self.retries),
            ENVIRONMENT["eager"]: "1" if self.eager else "",
            ENVIRONMENT["accel_redirect"]: self.accel_redirect or "",
        }


def _default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "wheelpatch", "serve")
