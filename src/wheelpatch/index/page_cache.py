"""Upstream project pages kept for a while: fresh ones answer without asking the upstream, and
when the upstream cannot be reached, ones not older than the stale limit still answer.

Pages are kept in memory and in the cache directory (``pages/<project>.json``, written to a
temporary name and renamed), so that every worker process sharing the directory, and a restarted
server, can serve them while the upstream is down.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CachedPage", "PageCache"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CachedPage:
    """An upstream's answer for a project page, as it came: body, type, final URL."""

    body: bytes
    content_type: str
    url: str
    #: The configured upstream (without credentials) it came from.
    upstream: str
    fetched: float

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.fetched


class PageCache:
    def __init__(self, root: Path) -> None:
        self._root = root / "pages"
        self._memory: dict[str, CachedPage] = {}
        self._lock = threading.Lock()

    def _path(self, project: str) -> Path:
        return self._root / f"{project}.json"

    def get(self, project: str) -> CachedPage | None:
        """The newest copy of the page, from memory or from the directory."""
        with self._lock:
            page = self._memory.get(project)
        try:
            data = json.loads(self._path(project).read_text("utf-8"))
            stored = CachedPage(
                data["body"].encode("utf-8"),
                str(data["content_type"]),
                str(data["url"]),
                str(data["upstream"]),
                float(data["fetched"]),
            )
        except FileNotFoundError:
            return page
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            _log.warning("%s: ignored (%s)", self._path(project), exc)
            return page
        if page is None or stored.fetched > page.fetched:
            with self._lock:
                self._memory[project] = stored
            return stored
        return page

    def put(self, project: str, page: CachedPage) -> None:
        with self._lock:
            self._memory[project] = page
        document = {
            "body": page.body.decode("utf-8"),
            "content_type": page.content_type,
            "url": page.url,
            "upstream": page.upstream,
            "fetched": page.fetched,
        }
        try:
            self._root.mkdir(parents=True, exist_ok=True)
            temp = self._root / f".{project}.{secrets.token_hex(4)}.tmp"
            temp.write_text(json.dumps(document), "utf-8")
            os.replace(temp, self._path(project))
        except OSError as exc:  # still served from memory
            _log.warning("%s: not written (%s)", self._path(project), exc.strerror)
