"""The store of ``wheelpatch serve``: one build for many threads and processes, nothing left by a
failed or killed build, damaged entries rebuilt, LRU eviction that spares leased files, and
``--cache-size``. Real threads and processes throughout."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from wheelpatch.index.cache import Cache, CachedFile, parse_size

KEY = "0123456789abcdef" * 4
NAME = "demo-1.0+patched.1-py3-none-any.whl"
SIZE = 1000


def key(number: int) -> str:
    return f"{number:016x}"


def writer(data: bytes, calls: list[bytes] | None = None) -> Callable[[Path], None]:
    """A build that writes ``data``, recording each call in ``calls``."""

    def build(path: Path) -> None:
        if calls is not None:
            calls.append(data)
        path.write_bytes(data)

    return build


def tmp_children(root: Path) -> list[Path]:
    return sorted((root / "tmp").iterdir())


# --- subprocesses ---------------------------------------------------------------------------------

WORKER = """
import os, sys, time
from pathlib import Path
from wheelpatch.index.cache import Cache

mode, root, key, name = sys.argv[1:5]
cache = Cache(Path(root), None)
if mode == "build":
    counter, go = Path(sys.argv[5]), Path(sys.argv[6])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.002)
    def build(path):
        time.sleep(0.5)
        with counter.open("a") as out:
            out.write(f"{os.getpid()}\\n")
        path.write_bytes(b"built once\\n" * 100)
    print(cache.get_or_build(key, name, build).sha256, flush=True)
elif mode == "half":
    def build(path):
        with path.open("wb") as out:
            out.write(b"half of it")
            out.flush()
            print("building", flush=True)
            time.sleep(120)
    cache.get_or_build(key, name, build)
elif mode == "lease":
    entry = cache.lookup(key, name)
    with cache.lease(entry):
        print("leased", flush=True)
        sys.stdin.readline()
"""


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start the worker script with arguments; every process started is stopped at the end."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    started: list[subprocess.Popen[str]] = []

    def start(*args: object) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, str(script), *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


# --- single flight --------------------------------------------------------------------------------


@pytest.mark.parametrize("instances", [1, 2], ids=["one Cache", "two Cache objects"])
def test_threads_build_once(tmp_path: Path, instances: int) -> None:
    caches = [Cache(tmp_path / "cache", None) for _ in range(instances)]
    calls: list[bytes] = []
    barrier = threading.Barrier(8)

    def build(path: Path) -> None:
        calls.append(b"")
        time.sleep(0.2)
        path.write_bytes(b"x" * SIZE)

    def request(number: int) -> CachedFile:
        barrier.wait()
        return caches[number % instances].get_or_build(KEY, NAME, build)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(request, range(8)))
    assert len(calls) == 1
    assert {(entry.path, entry.sha256, entry.size) for entry in results} == {
        (tmp_path / "cache" / "entries" / KEY / NAME, hashlib.sha256(b"x" * SIZE).hexdigest(), SIZE)
    }


def test_threads_build_a_blob_once(tmp_path: Path) -> None:
    cache = Cache(tmp_path, None)
    calls: list[int] = []
    barrier = threading.Barrier(8)

    def build() -> bytes:
        calls.append(1)
        time.sleep(0.2)
        return b"Metadata-Version: 2.1\n"

    def request(_: int) -> bytes:
        barrier.wait()
        return cache.get_or_build_bytes(KEY, NAME + ".metadata", build)

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(request, range(8))) == {b"Metadata-Version: 2.1\n"}
    assert calls == [1]
    assert Cache(tmp_path, None).get_or_build_bytes(KEY, NAME + ".metadata", build) == (
        b"Metadata-Version: 2.1\n"
    )
    assert calls == [1]


def test_processes_build_once(tmp_path: Path, worker: Callable[..., subprocess.Popen[str]]) -> None:
    root, counter, go = tmp_path / "cache", tmp_path / "counter", tmp_path / "go"
    processes = [worker("build", root, KEY, NAME, counter, go) for _ in range(4)]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
    go.touch()
    outputs = [process.communicate(timeout=60)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0, 0]
    assert outputs == [hashlib.sha256(b"built once\n" * 100).hexdigest() + "\n"] * 4
    assert len(counter.read_text().splitlines()) == 1
    assert tmp_children(root) == []


# --- failed and killed builds ---------------------------------------------------------------------


def test_failed_build_leaves_nothing(tmp_path: Path) -> None:
    cache = Cache(tmp_path, None)

    def fail(path: Path) -> None:
        path.write_bytes(b"the first half")
        raise ConnectionError("the upstream went away")

    with pytest.raises(ConnectionError, match="the upstream went away"):
        cache.get_or_build(KEY, NAME, fail)
    assert cache.lookup(KEY, NAME) is None
    assert tmp_children(tmp_path) == []
    assert list((tmp_path / "entries").iterdir()) == []
    entry = cache.get_or_build(KEY, NAME, writer(b"whole"))
    assert entry.path.read_bytes() == b"whole"
    assert cache.lookup(KEY, NAME) == entry


def test_failed_blob_build_leaves_nothing(tmp_path: Path) -> None:
    cache = Cache(tmp_path, None)

    def fail() -> bytes:
        raise ConnectionError("the upstream went away")

    with pytest.raises(ConnectionError, match="the upstream went away"):
        cache.get_or_build_bytes(KEY, "info.json", fail)
    assert cache.lookup(KEY, "info.json") is None
    assert tmp_children(tmp_path) == []
    assert cache.get_or_build_bytes(KEY, "info.json", lambda: b"{}") == b"{}"


@pytest.mark.parametrize("cleaner", ["sweep", "get_or_build"])
def test_killed_build(
    tmp_path: Path, worker: Callable[..., subprocess.Popen[str]], cleaner: str
) -> None:
    cache = Cache(tmp_path, None)
    process = worker("half", tmp_path, KEY, NAME)
    assert process.stdout is not None
    assert process.stdout.readline() == "building\n"
    # A build that is still running is not swept away.
    assert cache.sweep() == 0
    [leftover] = tmp_children(tmp_path)
    assert (leftover / NAME).read_bytes() == b"half of it"
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert tmp_children(tmp_path) == [leftover]
    assert cache.lookup(KEY, NAME) is None  # never served
    if cleaner == "sweep":
        assert cache.sweep() == 1
        assert tmp_children(tmp_path) == []
    entry = cache.get_or_build(KEY, NAME, writer(b"all of it"))
    assert entry.path.read_bytes() == b"all of it"
    assert entry.sha256 == hashlib.sha256(b"all of it").hexdigest()
    assert tmp_children(tmp_path) == []


def test_a_new_cache_sweeps(tmp_path: Path, worker: Callable[..., subprocess.Popen[str]]) -> None:
    process = worker("half", tmp_path, KEY, NAME)
    assert process.stdout is not None
    assert process.stdout.readline() == "building\n"
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert len(tmp_children(tmp_path)) == 1
    Cache(tmp_path, None)
    assert tmp_children(tmp_path) == []


def test_build_must_leave_a_file(tmp_path: Path) -> None:
    cache = Cache(tmp_path, None)
    with pytest.raises(RuntimeError, match=r"the build of 'x\.whl' wrote nothing at "):
        cache.get_or_build(KEY, "x.whl", lambda path: None)
    with pytest.raises(RuntimeError, match=r"the build of 'x\.whl' left no regular file at "):
        cache.get_or_build(KEY, "x.whl", lambda path: path.mkdir())
    assert tmp_children(tmp_path) == []


def test_build_may_rename_its_file_into_place(tmp_path: Path) -> None:
    cache = Cache(tmp_path, None)

    def build(path: Path) -> None:
        scratch = path.with_name("scratch")
        scratch.write_bytes(b"renamed")
        os.replace(scratch, path)

    assert cache.get_or_build(KEY, NAME, build).path.read_bytes() == b"renamed"


def test_a_build_asking_for_its_own_entry_fails(tmp_path: Path) -> None:
    cache = Cache(tmp_path, None)

    def build(path: Path) -> None:
        cache.get_or_build(KEY, NAME, build)

    with pytest.raises(RuntimeError, match="asked for again by the thread holding it"):
        cache.get_or_build(KEY, NAME, build)

    # Another name of the same key has a lock of its own.
    def build_from_another(path: Path) -> None:
        path.write_bytes(cache.get_or_build(KEY, "b", writer(b"b")).path.read_bytes() * 2)

    assert cache.get_or_build(KEY, NAME, build_from_another).path.read_bytes() == b"bb"


# --- damaged entries ------------------------------------------------------------------------------


def truncate(entry: CachedFile) -> None:
    with entry.path.open("r+b") as file:
        file.truncate(entry.size // 2)


def flip_byte_keeping_mtime(entry: CachedFile) -> None:
    """Bit rot: the content changes, the size and mtime do not."""
    info = entry.path.stat()
    with entry.path.open("r+b") as file:
        file.seek(10)
        file.write(b"!")
    os.utime(entry.path, ns=(info.st_atime_ns, info.st_mtime_ns))


def flip_byte(entry: CachedFile) -> None:
    with entry.path.open("r+b") as file:
        file.seek(10)
        file.write(b"!")
    os.utime(entry.path, ns=(1, 1))


def sidecar(entry: CachedFile) -> Path:
    return entry.path.with_name(f".{entry.path.name}.json")


def replace_by_directory(entry: CachedFile) -> None:
    entry.path.unlink()
    entry.path.mkdir()


def change_sidecar_sha256(entry: CachedFile) -> None:
    record = json.loads(sidecar(entry).read_text())
    record["sha256"] = "0" * 64
    sidecar(entry).write_text(json.dumps(record))


DAMAGES: list[tuple[str, Callable[[CachedFile], object]]] = [
    ("file truncated", truncate),
    ("file missing", lambda entry: entry.path.unlink()),
    ("file replaced by a directory", replace_by_directory),
    ("byte changed", flip_byte),
    ("sidecar missing", lambda entry: sidecar(entry).unlink()),
    ("sidecar not JSON", lambda entry: sidecar(entry).write_text("{not json")),
    ("sidecar not a record", lambda entry: sidecar(entry).write_text('{"schema": 1}')),
    ("sidecar names another sha256", change_sidecar_sha256),
]


@pytest.mark.parametrize(("damage"), [damage for _, damage in DAMAGES], ids=[i for i, _ in DAMAGES])
def test_damaged_entry_is_rebuilt(tmp_path: Path, damage: Callable[[CachedFile], object]) -> None:
    cache = Cache(tmp_path, None)
    calls: list[bytes] = []
    entry = cache.get_or_build(KEY, NAME, writer(b"0123456789" * 100, calls))
    damage(entry)
    assert cache.lookup(KEY, NAME) is None
    assert not cache.verify(KEY, NAME)
    assert cache.get_or_build(KEY, NAME, writer(b"0123456789" * 100, calls)) == entry
    assert len(calls) == 2
    assert entry.path.read_bytes() == b"0123456789" * 100
    assert cache.verify(KEY, NAME)


def test_bit_rot_is_caught_by_the_next_process(tmp_path: Path) -> None:
    cache = Cache(tmp_path, None)
    calls: list[bytes] = []
    entry = cache.get_or_build(KEY, NAME, writer(b"0123456789" * 100, calls))
    flip_byte_keeping_mtime(entry)
    # This process hashed the file when it stored it: it only checks the sidecar and size again.
    assert cache.get_or_build(KEY, NAME, writer(b"0123456789" * 100, calls)) == entry
    assert len(calls) == 1
    # A restarted server hashes each file on first use.
    restarted = Cache(tmp_path, None)
    assert restarted.lookup(KEY, NAME) is None
    assert restarted.get_or_build(KEY, NAME, writer(b"0123456789" * 100, calls)) == entry
    assert len(calls) == 2
    assert entry.path.read_bytes() == b"0123456789" * 100
    # verify() hashes again whenever asked.
    flip_byte_keeping_mtime(entry)
    assert not restarted.verify(KEY, NAME)
    assert restarted.get_or_build(KEY, NAME, writer(b"0123456789" * 100, calls)) == entry
    assert len(calls) == 3


def test_damaged_blob_is_rebuilt_at_once(tmp_path: Path) -> None:
    cache = Cache(tmp_path, None)
    calls: list[int] = []

    def build() -> bytes:
        calls.append(1)
        return b"0123456789" * 10

    cache.get_or_build_bytes(KEY, "info.json", build)
    entry = cache.lookup(KEY, "info.json")
    assert entry is not None
    flip_byte_keeping_mtime(entry)
    assert cache.get_or_build_bytes(KEY, "info.json", build) == b"0123456789" * 10
    assert calls == [1, 1]


# --- eviction and leases --------------------------------------------------------------------------


@pytest.mark.parametrize("touch", [True, False], ids=["lookup touches", "lookup(touch=False)"])
def test_least_recently_used_is_evicted(tmp_path: Path, touch: bool) -> None:
    cache = Cache(tmp_path, 2 * SIZE + SIZE // 2)
    a = cache.get_or_build(key(1), "a.whl", writer(b"a" * SIZE))
    b = cache.get_or_build(key(2), "b.whl", writer(b"b" * SIZE))
    assert cache.lookup(key(1), "a.whl", touch=touch) == a
    c = cache.get_or_build(key(3), "c.whl", writer(b"c" * SIZE))
    kept, evicted = (a, b) if touch else (b, a)
    assert cache.lookup(*ids(kept)) == kept
    assert cache.lookup(*ids(evicted)) is None
    assert cache.lookup(key(3), "c.whl") == c
    assert not evicted.path.parent.exists()
    assert not (
        tmp_path / "locks" / f"{evicted.path.parent.name}-{name_digest(evicted)}.lock"
    ).exists()


def ids(entry: CachedFile) -> tuple[str, str]:
    return entry.path.parent.name, entry.path.name


def name_digest(entry: CachedFile) -> str:
    return hashlib.sha256(entry.path.name.encode()).hexdigest()[:16]


def test_blobs_count_toward_the_size(tmp_path: Path) -> None:
    cache = Cache(tmp_path, 2 * SIZE + SIZE // 2)
    a = cache.get_or_build(key(1), "a.whl", writer(b"a" * SIZE))
    cache.get_or_build_bytes(key(2), "info.json", lambda: b"i" * SIZE)
    cache.get_or_build_bytes(key(3), "info.json", lambda: b"j" * SIZE)
    assert cache.lookup(*ids(a)) is None
    assert cache.lookup(key(2), "info.json") is not None


def test_the_entry_just_built_is_kept(tmp_path: Path) -> None:
    cache = Cache(tmp_path, SIZE // 2)
    a = cache.get_or_build(key(1), "a.whl", writer(b"a" * SIZE))
    assert cache.lookup(*ids(a)) == a
    b = cache.get_or_build(key(2), "b.whl", writer(b"b" * SIZE))
    assert cache.lookup(*ids(a)) is None
    assert cache.lookup(*ids(b)) == b
    assert cache.evict() == [ids(b)]


def test_unbounded_cache_never_evicts(tmp_path: Path) -> None:
    cache = Cache(tmp_path, None)
    for number in range(5):
        cache.get_or_build(key(number), "a.whl", writer(b"a" * SIZE))
    assert cache.evict() == []
    assert all(cache.lookup(key(number), "a.whl") for number in range(5))


@pytest.mark.parametrize("holder", ["this process", "another process"])
def test_leased_entry_is_not_evicted(
    tmp_path: Path, worker: Callable[..., subprocess.Popen[str]], holder: str
) -> None:
    cache = Cache(tmp_path, 2 * SIZE + SIZE // 2)
    a = cache.get_or_build(key(1), "a.whl", writer(b"a" * SIZE))
    b = cache.get_or_build(key(2), "b.whl", writer(b"b" * SIZE))
    release: Callable[[], None]
    if holder == "this process":
        lease = cache.lease(a)
        assert lease.file.read() == b"a" * SIZE
        release = lease.release
    else:
        process = worker("lease", tmp_path, *ids(a))
        assert process.stdout is not None
        assert process.stdout.readline() == "leased\n"

        def release() -> None:
            process.communicate("done\n", timeout=30)

    c = cache.get_or_build(key(3), "c.whl", writer(b"c" * SIZE))
    # a is the least recently used, but it is being served: b goes instead.
    assert cache.lookup(*ids(a), touch=False) == a
    assert cache.lookup(*ids(b)) is None
    # Another process's cache with no room at all still spares it.
    assert Cache(tmp_path, 0).evict() == [ids(c)]
    assert cache.lookup(*ids(a)) == a
    release()
    assert Cache(tmp_path, 0).evict() == [ids(a)]
    assert list((tmp_path / "entries").iterdir()) == []


def test_lease_of_a_removed_or_replaced_entry(tmp_path: Path) -> None:
    cache = Cache(tmp_path, None)
    entry = cache.get_or_build(KEY, NAME, writer(b"first"))
    with cache.lease(entry) as lease:
        assert lease.entry == entry
        assert lease.file.read() == b"first"
    truncate(entry)
    with pytest.raises(FileNotFoundError, match="removed or replaced; look it up again"):
        cache.lease(entry)
    rebuilt = cache.get_or_build(KEY, NAME, writer(b"second"))
    with pytest.raises(FileNotFoundError, match="removed or replaced"):
        cache.lease(entry)
    Cache(tmp_path, 0).evict()
    with pytest.raises(FileNotFoundError, match="removed or replaced"):
        cache.lease(rebuilt)
    with pytest.raises(ValueError, match="not a file of the cache in"):
        cache.lease(CachedFile(tmp_path / "elsewhere" / KEY / NAME, entry.sha256, 5))


# --- what is refused ------------------------------------------------------------------------------


BAD_KEYS = ["", "0123456789abcde", "0123456789ABCDEF", "0123456789abcdeg", "0" * 65, KEY + "\n"]
BAD_NAMES = ["", ".", "..", ".hidden", "a/b", "a\\b", "a\0b", "x" * 241, "\udc80.whl"]


@pytest.mark.parametrize("bad", BAD_KEYS, ids=repr)
def test_bad_keys(tmp_path: Path, bad: str) -> None:
    cache = Cache(tmp_path, None)
    message = f"cache key {bad!r} is not 16 to 64 lowercase hexadecimal digits"
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        cache.get_or_build(bad, NAME, writer(b""))
    with pytest.raises(ValueError, match="cache key"):
        cache.lookup(bad, NAME)
    with pytest.raises(ValueError, match="cache key"):
        cache.get_or_build_bytes(bad, NAME, lambda: b"")
    assert list((tmp_path / "entries").iterdir()) == []


@pytest.mark.parametrize("bad", BAD_NAMES, ids=repr)
def test_bad_names(tmp_path: Path, bad: str) -> None:
    cache = Cache(tmp_path, None)
    with pytest.raises(ValueError, match="cache file name") as raised:
        cache.get_or_build(KEY, bad, writer(b""))
    assert repr(bad) in str(raised.value)
    with pytest.raises(ValueError, match="cache file name"):
        cache.lookup(KEY, bad)
    with pytest.raises(ValueError, match="cache file name"):
        cache.verify(KEY, bad)
    assert list((tmp_path / "entries").iterdir()) == []


def test_longest_name(tmp_path: Path) -> None:
    cache = Cache(tmp_path, None)
    assert cache.get_or_build(KEY, "x" * 240, writer(b"long")).path.read_bytes() == b"long"


SIZES = [
    ("2000000", 2000000),
    ("0", 0),
    ("100B", 100),
    ("64k", 64 << 10),
    ("2Ki", 2 << 10),
    ("500M", 500 << 20),
    ("500MB", 500 << 20),
    ("10G", 10 << 30),
    ("10GB", 10 << 30),
    ("10GiB", 10 << 30),
    ("10gb", 10 << 30),
    ("1.5GiB", 3 << 29),
    (".5K", 512),
    ("1.1", 1),
    ("2T", 2 << 40),
    (" 7 G ", 7 << 30),
]
NOT_SIZES = ["", "G", "GiB", "-1G", "+1G", "1e9", "inf", "nan", "10 X", "1,5G", "10GG", "10iB"]
NOT_SIZES += ["0x10", "1_000", "1.", "10P", "1 0", "\uff11\uff10"]


@pytest.mark.parametrize(("text", "expected"), SIZES, ids=[text for text, _ in SIZES])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", NOT_SIZES, ids=repr)
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size: give a number of bytes") as raised:
        parse_size(text)
    assert str(raised.value).startswith(repr(text))
