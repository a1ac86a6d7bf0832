"""The proxy's work, independent of HTTP: pages planned from upstream pages, patched METADATA
worked out from range reads, patched wheels built once and cached.

A patched wheel is a pure function of (upstream bytes, override, wheelpatch version), so its cache
key is the hash of those: any number of workers and replicas build byte-identical files, and a
lock file made from one replica's page is valid against another's.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename

from .. import __version__
from ..errors import InvalidWheel, WheelpatchError
from ..patch.plan import PatchPlan, Unchanged, plan_metadata, plan_patch
from ..patch.writer import patched_size, rewrite_in_place, unchanged_prefix, write_wheel
from ..rules.config import Override
from ..wheel.archive import InPlaceError
from ..wheel.digest import FollowingDigest
from ..wheel.source_wheel import METADATA_CAP, read_metadata, read_wheel
from .cache import Cache, CachedFile, Lease
from .listing import ListedFile, Listing, ListingError, parse_listing
from .page_cache import CachedPage, PageCache
from .proxy import Patched, Served, patch_candidates, plan_page, served_name
from .relay import Relay
from .remote import read_remote_wheel
from .settings import ServeSettings
from .upstream import Download, UpstreamClient, UpstreamError, redact

__all__ = ["NotFound", "ProxyService", "ServedPage"]

#: How many bytes received are written (and a first download's response woken) at a time.
_RELAY_STEP = 1 << 20
_log = logging.getLogger(__name__)
#: Upstream wheels whose METADATA is read at once when a page is first planned.
_READERS = 8


class NotFound(WheelpatchError):
    """No configured upstream has the project, or the page lists no such file (404)."""


@dataclass(frozen=True, slots=True)
class ServedPage:
    listing: Listing
    served: dict[str, Served]
    #: True when the upstream could not be reached and an older copy of its page answered.
    stale: bool
    upstream: str


class ProxyService:
    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.cache = Cache(settings.cache_dir / "files", settings.cache_size)
        self.pages = PageCache(settings.cache_dir)
        self.client = UpstreamClient(settings.upstreams, settings.timeout, settings.retries)
        self._work = settings.cache_dir / "work"
        self._work.mkdir(parents=True, exist_ok=True)
        self._readers = ThreadPoolExecutor(_READERS, thread_name_prefix="wheelpatch-read")
        self._builders = ThreadPoolExecutor(2, thread_name_prefix="wheelpatch-build")
        self._queued: set[str] = set()
        self._queued_lock = threading.Lock()
        #: Upstream files found unpatchable lately (by identity): not fetched again at every
        #: page view, until the page's time to live has passed.
        self._refused: dict[tuple[str, str], tuple[float, str]] = {}
        self._root: tuple[float, list[str]] | None = None
        #: Builds that failed lately (by cache key): answered with their reason for the page's
        #: time to live rather than fetched again at every request.
        self._failed: dict[str, tuple[float, UpstreamError]] = {}
        _sweep(self._work, ".remote-")
        _sweep(settings.cache_dir / "pages", ".")

    def close(self) -> None:
        self._readers.shutdown(wait=False, cancel_futures=True)
        self._builders.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    # -- pages ---------------------------------------------------------------------------------

    def _override(self, project: str) -> Override | None:
        return self.settings.config.override_for(project)

    def _upstream_page(self, project: NormalizedName) -> tuple[CachedPage, bool]:
        cached = self.pages.get(project)
        if cached is not None and cached.age() <= self.settings.page_ttl:
            return cached, False
        try:
            fetched = self.client.project(project)
        except UpstreamError as exc:
            if cached is not None and exc.status == 503 and cached.age() <= self.settings.stale_age:
                _log.warning(
                    "%s: serving the page of %s fetched %.0f s ago (%s)",
                    cached.upstream,
                    project,
                    cached.age(),
                    exc,
                )
                return cached, True
            raise
        if fetched is None:
            raise NotFound(f"no configured upstream has a project {project!r}")
        self.pages.put(project, fetched)
        return fetched, False

    def page(self, project: NormalizedName) -> ServedPage:
        raw, stale = self._upstream_page(project)
        try:
            listing = parse_listing(raw.body, raw.content_type, project, raw.url)
        except ListingError as exc:  # checked when fetched: only a damaged cache gets here
            raise UpstreamError(f"{raw.url}: {exc}") from None
        override = self._override(project)
        known: dict[str, Patched | str] = {}
        candidates = patch_candidates(listing, override)
        if override is not None and candidates:
            results = self._readers.map(lambda f: self._known(f, override), candidates)
            for file, result in zip(candidates, results, strict=True):
                known[file.filename] = result
        planned, served = plan_page(
            listing,
            override,
            known,
            links=self.settings.links,
            unpatched=self.settings.unpatched,
        )
        if self.settings.eager and override is not None:
            for name, source in served.items():
                if source.patched and source.problem is None:
                    self._build_later(source, name)
        return ServedPage(planned, served, stale, raw.upstream)

    def root(self) -> list[str]:
        """Every project the upstreams list (kept for the page time to live, and served stale
        while the upstreams cannot be reached, as project pages are)."""
        kept = self._root
        age = time.monotonic() - kept[0] if kept is not None else None
        if kept is not None and age is not None and age <= self.settings.page_ttl:
            return kept[1]
        try:
            names = self.client.projects()
        except UpstreamError as exc:
            stale = age is not None and exc.status == 503 and age <= self.settings.stale_age
            if kept is not None and stale:
                return kept[1]
            raise
        self._root = (time.monotonic(), names)
        return names

    # -- what a patched file will be --------------------------------------------------------------

    def _key(self, upstream_sha256: str, override: Override, filename: str) -> str:
        """The cache key of a patched wheel: everything its bytes are a function of. Beside
        the upstream bytes, the override and this version, the provenance document records the
        configuration's path, what git described (a label from git) and SOURCE_DATE_EPOCH."""
        config = self.settings.config
        identity = "\0".join(
            (
                upstream_sha256,
                override.digest,
                __version__,
                filename,
                config.display_path or "",
                json.dumps(config.git.as_json() if config.git is not None else None),
                _epoch() or "",
            )
        )
        return hashlib.sha256(identity.encode("utf-8")).hexdigest()

    def _identity(self, file: ListedFile) -> tuple[Override, str, str]:
        """The override, upstream sha256 and cache key of an upstream wheel to patch."""
        override = self._override(parse_wheel_filename(file.filename)[0])
        if override is None or file.sha256 is None:
            raise UpstreamError(f"{file.filename}: not a wheel the proxy patches")
        return override, file.sha256, self._key(file.sha256, override, file.filename)

    @staticmethod
    def _info_key(key: str) -> str:
        """The key of what is known of that wheel before it is built (its own lock: working it
        out may build the wheel, under the wheel's)."""
        return hashlib.sha256(f"info\0{key}".encode()).hexdigest()

    def _known(self, file: ListedFile, override: Override) -> Patched | str:
        """What the patched file of ``file`` will be, or why there will be none."""
        identity = (file.url, file.sha256 or "")
        refused = self._refused.get(identity)
        if refused is not None and time.monotonic() - refused[0] < self.settings.page_ttl:
            return refused[1]
        try:
            return self._patched_info(file, override)
        except UpstreamError as exc:
            if exc.status == 503:  # not the file's fault: the page cannot be answered now
                raise
            reason = str(exc)
        except WheelpatchError as exc:  # the engine refused the wheel
            reason = str(exc)
        _log.warning("%s: not listed (%s)", file.filename, reason)
        self._refused[identity] = (time.monotonic(), reason)
        return reason

    def _patched_info(self, file: ListedFile, override: Override) -> Patched:
        sha256 = file.sha256
        if sha256 is None:
            raise UpstreamError(f"{redact(file.url)}: the upstream lists no sha256 for it")
        key = self._key(sha256, override, file.filename)
        info, metadata = self._announced(file)
        try:
            patched = Patched(
                filename=str(info["filename"]),
                size=None if info["size"] is None else int(str(info["size"])),
                metadata_sha256=hashlib.sha256(metadata).hexdigest(),
                requires_python=None
                if info["requires_python"] is None
                else str(info["requires_python"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamError(f"{file.filename}: cache entry {key} is damaged ({exc})") from None
        built = self.cache.lookup(key, patched.filename, touch=False)  # a view, not a use
        if built is not None:
            patched = Patched(
                patched.filename,
                built.size,
                patched.metadata_sha256,
                patched.requires_python,
                built.sha256,
            )
        return patched

    def _read_info(self, file: ListedFile, key: str) -> bytes:
        """METADATA and size of the patched file, from range reads of the upstream wheel (its
        end of central directory, central directory and ``.dist-info`` members); from the whole
        wheel, built at once, when the upstream does not serve ranges."""
        override, sha256, _ = self._identity(file)
        size = file.size if file.size is not None else self.client.size(file.url)
        if size is not None:
            fetched = 0

            def read_range(offset: int, length: int) -> bytes:
                nonlocal fetched
                data = self.client.read_range(file.url, offset, length)
                if data is None:
                    raise _NoRanges
                fetched += length
                return data

            try:
                remote = read_remote_wheel(file.filename, size, read_range, self._work)
            except _NoRanges:
                pass
            else:
                plan = plan_patch(remote.wheel, self.settings.config)
                _log.info(
                    "%s: METADATA read with %d bytes of %d", file.filename, remote.fetched, size
                )
                if isinstance(plan, Unchanged):
                    return _info(file.filename, size, remote.metadata, override, file)
                return _info(
                    plan.filename,
                    patched_size(plan, sha256, _epoch()),
                    plan.metadata,
                    override,
                    file,
                    unchanged_prefix(plan),
                )
        # No ranges. A PEP 658 sidecar gives the METADATA (the size is known once built);
        # else the whole file it is, and then the wheel might as well be built now.
        expected = file.core_metadata
        if isinstance(expected, dict) and "sha256" in expected:
            return self._info_from_sidecar(file, expected["sha256"], override)
        name = served_name(file, override)
        assert name is not None
        built, metadata = self._build(file, key, name, announced=None)
        return _info(built.path.name, built.size, metadata, override, file)

    def _info_from_sidecar(self, file: ListedFile, sha256: str, override: Override) -> bytes:
        data = self.client.read(file.url + ".metadata", METADATA_CAP)
        found = hashlib.sha256(data).hexdigest()
        if found != sha256:
            raise UpstreamError(
                f"{redact(file.url)}.metadata: sha256 {found} does not match the {sha256} "
                "its index lists"
            )
        name, version, _, _ = parse_wheel_filename(file.filename)
        document = read_metadata(data, name, version, file.filename, "metadata file")
        plan = plan_metadata(name, version, file.filename, document, self.settings.config)
        _log.info("%s: METADATA read from its metadata file", file.filename)
        if isinstance(plan, str):  # nothing changes: served as it is
            return _info(file.filename, file.size, data, override, file)
        return _info(plan.filename, None, plan.metadata, override, file)

    def _served(self, project: NormalizedName, filename: str) -> Served:
        """Where a file the page lists comes from; 404 for one it does not list, 502 for one
        that cannot be patched."""
        source = self.page(project).served.get(filename)
        if source is None:
            raise NotFound(f"{project}: the page lists no file {filename!r}")
        if source.problem is not None:
            raise UpstreamError(f"{filename}: {source.problem}")
        return source

    def metadata(self, project: NormalizedName, filename: str) -> bytes:
        """The PEP 658 sidecar of a file the page lists."""
        source = self._served(project, filename)
        if not source.patched:
            if source.upstream.core_metadata is False:
                raise NotFound(f"{filename}: the upstream has no metadata file for it")
            data = self.client.read(source.upstream.url + ".metadata", 16 << 20)
            expected = source.upstream.core_metadata
            if isinstance(expected, dict) and "sha256" in expected:
                found = hashlib.sha256(data).hexdigest()
                if found != expected["sha256"]:
                    raise UpstreamError(
                        f"{filename}.metadata: sha256 {found} does not match the "
                        f"{expected['sha256']} its index lists"
                    )
            return data
        return self._announced(source.upstream)[1]

    def _announced(self, file: ListedFile) -> tuple[dict[str, object], bytes]:
        """What is known of ``file``'s patched wheel (worked out once, then kept in the cache),
        and its patched METADATA."""
        _, _, key = self._identity(file)
        data = self.cache.get_or_build_bytes(
            self._info_key(key), "info.json", lambda: self._read_info(file, key)
        )
        try:
            info = json.loads(data)
            return info, base64.b64decode(info["metadata"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamError(f"{file.filename}: cache entry {key} is damaged ({exc})") from None

    # -- downloads --------------------------------------------------------------------------------

    def file(self, project: NormalizedName, filename: str) -> Lease | Download:
        """A patched wheel from the cache (built first if need be), leased against eviction
        until the caller releases it; or, for a file passed through with ``links="proxy"``, the
        upstream's bytes as they arrive."""
        source = self._served(project, filename)
        if not source.patched:
            return self.client.open(source.upstream.url)
        for _ in range(3):
            entry = self._patched_file(source, filename)
            try:
                return self.cache.lease(entry)
            except FileNotFoundError:  # evicted (or found damaged) between the two: again
                continue
        raise UpstreamError(
            f"{filename}: evicted as soon as it was built (is --cache-size smaller than it?)", 503
        )

    def _patched_file(self, source: Served, filename: str) -> CachedFile:
        file = source.upstream
        _, _, key = self._identity(file)
        built = self.cache.lookup(key, filename)
        if built is not None:
            return built
        self._raise_failed(key)
        info, metadata = self._announced(source.upstream)
        try:
            return self._build(file, key, filename, announced=(info, metadata))[0]
        except UpstreamError as exc:
            if exc.status == 502:  # a wrong answer, not one that may come right in a moment
                self._failed[key] = (time.monotonic(), exc)
            raise

    def _raise_failed(self, key: str) -> None:
        failed = self._failed.get(key)
        if failed is not None and time.monotonic() - failed[0] < self.settings.page_ttl:
            raise failed[1]

    def _build(
        self,
        file: ListedFile,
        key: str,
        filename: str,
        announced: tuple[dict[str, object], bytes] | None,
        relay: Relay | None = None,
    ) -> tuple[CachedFile, bytes]:
        """Fetch the upstream wheel once, check its sha256, patch it with the engine of
        ``wheelpatch patch`` and cache the result; the patched METADATA and size must be what
        the page announced.

        The upstream wheel is received straight into the cache's temporary file and patched
        there in place (:func:`rewrite_in_place`: its first members stay where they are). With
        a ``relay``, the bytes the patched wheel shares with the upstream one are passed on as
        they arrive, and the rest once the whole wheel has been checked and patched: a client's
        first download takes about as long as the upstream transfer, and it is complete only if
        everything checked out (else it is cut short, and its length says so)."""
        metadata: list[bytes] = []

        prefix = announced[0].get("prefix") if announced is not None else None
        shared = prefix if isinstance(prefix, int) else -1  # bytes the two wheels begin with

        def build(target: Path) -> str | None:
            sent = position = 0
            upto = shared
            said: str | None = None  # the patched wheel's sha256, when it was worked out here
            # Under its own name (read_wheel checks it), beside the target in the cache's
            # tmp/, so that what a killed build left is swept with it.
            received = target.parent / file.filename
            with (
                received.open("w+b", buffering=0) as out,
                # Hashed by a child reading back what is written; the patched wheel's hash
                # starts as the upstream's, up to ``upto``.
                contextlib.closing(FollowingDigest(out.fileno(), branch_at=upto)) as hashing,
            ):
                if relay is not None:
                    relay.attach(out.fileno())
                # Written a batch of 1 MiB at a time (one writev, one hand-over of the GIL),
                # not a write for each 64 KiB piece the socket gives.
                pieces: list[bytes] = []
                pending = 0
                for chunk in self.client.open(file.url):
                    pieces.append(chunk)
                    pending += len(chunk)
                    if pending < _RELAY_STEP:
                        continue
                    _write_pieces(out.fileno(), pieces)
                    position += pending
                    pieces, pending = [], 0
                    hashing.advance(position)
                    # On disk: the response may send it.
                    if relay is not None and sent < relay.prefix:
                        sent = min(position, relay.prefix)
                        relay.advance(sent)
                _write_pieces(out.fileno(), pieces)
                position += pending
                try:
                    found, branched = hashing.finish(position)
                except InvalidWheel as exc:
                    raise UpstreamError(f"{filename}: {exc}") from None
                if file.sha256 is not None and found != file.sha256:
                    raise UpstreamError(
                        f"{redact(file.url)}: sha256 {found} does not match the "
                        f"{file.sha256} its index lists"
                    )
                try:
                    wheel = read_wheel(received)
                    plan = plan_patch(wheel, self.settings.config)
                except InvalidWheel as exc:
                    raise UpstreamError(f"upstream wheel refused: {exc}") from None
                if isinstance(plan, Unchanged):
                    metadata.append(wheel.metadata_bytes)
                    size = os.fstat(out.fileno()).st_size
                    branched, upto = False, size  # the upstream's own bytes: hashed already
                    said = found
                else:
                    metadata.append(plan.metadata)
                    if announced is not None and plan.metadata != announced[1]:
                        raise UpstreamError(
                            f"{filename}: the patched METADATA differs from the one the page "
                            "announced (the upstream wheel changed?)"
                        )
                    if sent > unchanged_prefix(plan):
                        raise UpstreamError(f"{filename}: the bytes sent on were not the wheel's")
                    if upto != unchanged_prefix(plan):
                        branched = False
                    try:
                        size = rewrite_in_place(plan, out.fileno(), found, _epoch())
                    except InPlaceError:
                        if sent:
                            raise UpstreamError(
                                f"{filename}: the bytes sent on were not the wheel's"
                            ) from None
                        size = self._write_afresh(plan, out.fileno(), received)
                        branched = False
                expected = announced[0]["size"] if announced is not None else None
                if expected is not None and size != expected:
                    raise UpstreamError(
                        f"{filename}: {size} bytes, not the {expected} the page announced"
                    )
                if branched:
                    try:
                        said = hashing.extend(upto, size)
                    except InvalidWheel as exc:
                        raise UpstreamError(f"{filename}: {exc}") from None
            # The rest is the response's once the wheel is stored (see first_download).
            os.replace(received, target)
            return said

        built = self.cache.get_or_build(key, filename, build)
        if metadata:
            _log.info("%s: built (%d bytes, sha256 %s)", filename, built.size, built.sha256)
            return built, metadata[0]
        wheel = read_wheel(built.path)
        return built, wheel.metadata_bytes

    def _write_afresh(self, plan: PatchPlan, fd: int, target: Path) -> int:
        """The patched wheel written apart and copied over ``fd`` (a layout that moves the first
        members, which :func:`rewrite_in_place` cannot do)."""
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            written = write_wheel(plan, Path(scratch))
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            with written.open("rb") as source, os.fdopen(os.dup(fd), "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
            return written.stat().st_size

    def first_download(self, project: NormalizedName, filename: str) -> Relay | None:
        """The first download of a patched wheel, streamed while it is built (see
        :meth:`_build`); None when the wheel is built already, or when its size is not known
        ahead (an upstream without ranges), for :meth:`file` to answer."""
        source = self._served(project, filename)
        if not source.patched:
            return None
        file = source.upstream
        _, _, key = self._identity(file)
        if self.cache.lookup(key, filename, touch=False) is not None:
            return None
        self._raise_failed(key)
        info, metadata = self._announced(source.upstream)
        size, prefix = info.get("size"), info.get("prefix")
        if not isinstance(size, int) or not isinstance(prefix, int):
            return None
        relay = Relay(size, prefix)

        def run() -> None:
            try:
                built, _ = self._build(file, key, filename, (info, metadata), relay)
                if not relay.attached:  # another worker built it meanwhile: send that
                    with self.cache.lease(built) as lease:
                        relay.attach(lease.file.fileno())
                if built.size != relay.size:
                    raise UpstreamError(f"{filename}: {built.size} bytes, not {relay.size}")
                # The rest only now that the wheel is checked and stored: the download ends
                # once it is in the cache, never before.
                relay.advance(built.size)
                relay.finish()
            except BaseException as exc:
                _log.warning("%s: first download cut short (%s)", filename, exc)
                if isinstance(exc, UpstreamError) and exc.status == 502:
                    self._failed[key] = (time.monotonic(), exc)
                relay.finish(exc)

        threading.Thread(target=run, name="wheelpatch-first", daemon=True).start()
        return relay

    def _build_later(self, source: Served, filename: str) -> None:
        """Build in the background (``--eager``) what the page just listed; from the source in
        hand, never by planning the page again (which would queue the others again)."""
        with self._queued_lock:
            if filename in self._queued:
                return
            self._queued.add(filename)

        def run() -> None:
            try:
                self._patched_file(source, filename)
            except (WheelpatchError, OSError) as exc:
                _log.warning("%s: not built ahead (%s)", filename, exc)
            finally:
                with self._queued_lock:
                    self._queued.discard(filename)

        self._builders.submit(run)

    def warm(self, requirement: str) -> list[CachedFile]:
        """Build the patched wheels of every version ``requirement`` admits (``torch==2.0.1``),
        so that lockers see their hashes from the first page."""
        try:
            wanted = Requirement(requirement)
        except InvalidRequirement as exc:
            raise NotFound(f"{requirement!r} is not a requirement ({exc})") from None
        project = canonicalize_name(wanted.name)
        page = self.page(project)
        built = []
        for name, source in sorted(page.served.items()):
            if not source.patched:
                continue
            version = parse_wheel_filename(name)[1]
            if not wanted.specifier.contains(version, prereleases=True):
                continue
            if source.problem is not None:
                raise UpstreamError(f"{name}: {source.problem}")
            built.append(self._patched_file(source, name))
        if not built:
            raise NotFound(f"{requirement}: the proxy lists no patched wheel it admits")
        return built


class _NoRanges(Exception):
    """The upstream answered a range request with the whole file."""


def _sweep(directory: Path, prefix: str, age: float = 3600.0) -> None:
    """Remove what a killed process left in ``directory``: directories named ``prefix...`` (a
    range read's scratch) and files named ``prefix...tmp`` (a page being written), untouched for
    ``age`` seconds. Each lasts seconds, so what replicas sharing the directory are doing is left
    alone."""
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if not entry.name.startswith(prefix):
                continue
            with contextlib.suppress(OSError):
                if now - entry.stat(follow_symlinks=False).st_mtime < age:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                elif entry.name.endswith(".tmp"):
                    os.unlink(entry.path)


def _write_pieces(fd: int, pieces: list[bytes]) -> None:
    """Write ``pieces`` one after another, in as few ``writev`` calls as the kernel allows."""
    views = [memoryview(piece) for piece in pieces if piece]
    while views:
        # At most IOV_MAX pieces a call; Windows has no writev.
        written = os.writev(fd, views[:1024]) if hasattr(os, "writev") else os.write(fd, views[0])
        while written and views:
            if written >= len(views[0]):
                written -= len(views.pop(0))
            else:
                views[0] = views[0][written:]
                written = 0


def _epoch() -> str | None:
    """SOURCE_DATE_EPOCH as the writer reads it (it reaches the provenance document)."""
    return os.environ.get("SOURCE_DATE_EPOCH") or None


def _info(
    filename: str,
    size: int | None,
    metadata: bytes,
    override: Override,
    file: ListedFile,
    prefix: int | None = None,
) -> bytes:
    document = {
        "filename": filename,
        "size": size,
        #: How much of the upstream wheel the patched one starts with, unchanged.
        "prefix": prefix,
        "metadata": base64.b64encode(metadata).decode("ascii"),
        "requires_python": override.requires_python or file.requires_python,
    }
    return json.dumps(document, sort_keys=True).encode("utf-8")
