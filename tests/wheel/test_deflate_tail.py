"""Inflating a range near a deflate stream's end from a block boundary found before it: the
bytes are the stream's own or nothing (never other bytes), for streams of stored, fixed and
dynamic blocks written by zlib at several levels and by ISA-L, boundaries on and off byte
boundaries, and streams that are cut, corrupted, or not deflate at all."""

from __future__ import annotations

import os
import random
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from isal import isal_zlib

from wheelpatch.wheel import deflate_tail
from wheelpatch.wheel.deflate_tail import find_block, inflate_range

PREFIX = b"P" * 777  # another member before the stream
SUFFIX = b"central directory"


def _text(rng: random.Random, size: int) -> bytes:
    """Words of a small vocabulary: each repeats within 32 KiB, copied from its last use."""
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(2, 12)))
             for _ in range(3000)]  # fmt: skip
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + rng.choice([b" ", b"\0", b".so\0", b"\n"])
    return bytes(out[:size])


def _code(rng: random.Random, size: int) -> bytes:
    """Like machine code: short sequences repeating nearby, the set changing every 4 KiB."""
    out = []
    for _ in range(size // 4096 + 1):
        pool = [rng.randbytes(rng.randint(3, 12)) for _ in range(48)]
        pool += [rng.randbytes(rng.randint(1, 6)) for _ in range(20)]  # one-offs, as literals
        out.append(b"".join(rng.choices(pool, k=560))[:4096])
    return b"".join(out)[:size]


def _symbols(rng: random.Random, size: int) -> bytes:
    """Like a dynamic string table: mostly unique mangled names."""
    out = bytearray()
    while len(out) < size:
        name = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(30))
        out += b"_ZN" + name[: rng.randint(8, 30)] + b"\0"
    return bytes(out[:size])


def _data(seed: int, layout: str) -> bytes:
    """A member's bytes: about 1 MB each of code (``c``), symbols (``s``), text (``t``), random
    bytes (``r``: stored blocks) and zeros (``z``: a few blocks cover them), in that order."""
    rng = random.Random(seed)
    make = {
        "c": _code,
        "s": _symbols,
        "t": _text,
        "r": lambda rng, size: rng.randbytes(size),
        "z": lambda rng, size: bytes(size),
    }
    return b"".join(make[kind](rng, rng.randint(600_000, 1_400_000)) for kind in layout)


def _compress(data: bytes, how: str) -> bytes:
    if how == "isal":
        return isal_zlib.compress(data, 2, -15)
    level = int(how.removeprefix("zlib"))
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def _archive(tmp_path: Path, stream: bytes) -> tuple[int, int, int]:
    path = tmp_path / f"member{len(list(tmp_path.iterdir()))}.bin"
    path.write_bytes(PREFIX + stream + SUFFIX)
    fd = os.open(path, os.O_RDONLY)
    return fd, len(PREFIX), len(PREFIX) + len(stream)


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[Callable[[bytes], tuple[int, int, int]]]:
    fds: list[int] = []

    def open_stream(stream: bytes) -> tuple[int, int, int]:
        fd, start, end = _archive(tmp_path, stream)
        fds.append(fd)
        return fd, start, end

    yield open_stream
    for fd in fds:
        os.close(fd)


CASES = [
    ("ccccccs", "zlib6"),
    ("ccccccs", "zlib1"),
    ("ccccccs", "zlib9"),
    ("crcrccs", "zlib6"),  # stored blocks between Huffman ones
    ("rrrrrcs", "zlib6"),  # past a long run of stored blocks
    ("czcccccs", "zlib6"),  # zeros: a few blocks cover megabytes
    ("crczccs", "isal"),  # another encoder
]


@pytest.mark.parametrize(("layout", "how"), CASES)
def test_a_range_near_the_end_is_the_streams_own_bytes(
    opened: Callable[[bytes], tuple[int, int, int]], layout: str, how: str
) -> None:
    data = _data(len(layout) + len(how), layout)
    fd, start, end = opened(_compress(data, how))
    size = len(data)
    for fraction in (0.7, 0.85, 0.999):
        at = int(size * fraction)
        for module in (zlib, isal_zlib):
            found = inflate_range(fd, start, end, size, at, at + 900, keep_tail=4096, module=module)
            assert found is not None, (fraction, module)
            assert found.get(at, at + 900) == data[at : at + 900]
            assert found.tail == data[-4096:]
            assert found.tail_start == size - 4096
            assert found.start <= at  # from a boundary before the range
            assert found.get(found.tail_start, size) == data[-4096:]


@pytest.mark.parametrize("layout", ["tttttt", "ccctts", "zzzzzt"])
def test_bytes_copied_from_before_the_boundary_are_never_given(
    opened: Callable[[bytes], tuple[int, int, int]], layout: str
) -> None:
    # Text whose words repeat within a window carries copies of the bytes before any boundary
    # to the end: ranges of it are given right, or not at all.
    data = _data(21, layout)
    fd, start, end = opened(_compress(data, "zlib6"))
    size = len(data)
    given = 0
    for fraction in (0.7, 0.8, 0.9, 0.95, 0.999):
        at = int(size * fraction)
        found = inflate_range(fd, start, end, size, at, at + 2000, keep_tail=8192)
        if found is not None:
            given += 1
            assert found.get(at, at + 2000) == data[at : at + 2000]
            known = found.get(found.tail_start, size)
            assert known is None or known == data[-8192:]
    assert given <= 5


def test_boundaries_off_byte_boundaries_are_found_and_used(
    opened: Callable[[bytes], tuple[int, int, int]],
) -> None:
    data = _data(3, "cccccc")
    fd, start, end = opened(_compress(data, "zlib6"))
    offsets = set()
    position = start + (end - start) // 3
    for _ in range(12):
        bit = find_block(fd, position, end, start)
        assert bit is not None
        offsets.add(bit % 8)
        position = bit // 8 + 1
    assert offsets - {0}  # Huffman blocks end anywhere in a byte
    at = len(data) * 3 // 4
    found = inflate_range(fd, start, end, len(data), at, at + 64)
    assert found is not None
    assert found.get(at, at + 64) == data[at : at + 64]


def test_a_range_kept_from_a_pass_too_early_is_inflated_again(
    opened: Callable[[bytes], tuple[int, int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Zeros at the start compress to nothing: an even guess lands far before the range.
    data = bytes(3_000_000) + _data(9, "cccc")
    fd, start, end = opened(_compress(data, "zlib6"))
    calls: list[int | None] = []
    real = deflate_tail._pass

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(kwargs.get("until"))  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(deflate_tail, "_pass", counting)
    at = len(data) - 200_000
    found = inflate_range(fd, start, end, len(data), at, at + 100)
    assert found is not None
    assert found.get(at, at + 100) == data[at : at + 100]
    assert len(calls) >= 1


def _code_then_symbols() -> tuple[bytes, bytes, int, int]:
    """A member of code, stored blocks and symbols: its bytes, stream, size, and a place 80%
    in."""
    data = _data(5, "ccrccs")
    return data, _compress(data, "zlib6"), len(data), int(len(data) * 0.8)


def test_cut_streams_and_what_is_no_deflate_give_nothing(
    opened: Callable[[bytes], tuple[int, int, int]],
) -> None:
    _, stream, size, at = _code_then_symbols()
    assert inflate_range(*opened(stream), size, at, at + 500) is not None
    rng = random.Random(8)
    # Cut short (the stream does not end where the member does), or random bytes.
    for variant in (stream[: len(stream) - 5000], stream[:-1], rng.randbytes(len(stream))):
        assert inflate_range(*opened(variant), size, at, at + 500, keep_tail=1000) is None


def test_a_changed_bit_after_the_range_gives_the_range_or_nothing_or_misplaces_it(
    opened: Callable[[bytes], tuple[int, int, int]],
) -> None:
    # A flipped bit can leave the stream valid and change its length: the bytes before it are
    # then placed where they are not (positions count back from the end). That is what the
    # reader of the result guards against (wheelpatch.check.elf checks what it read); here the
    # bytes given are the member's own, wherever they are said to lie.
    data, stream, size, at = _code_then_symbols()
    rng = random.Random(8)
    for _ in range(8):
        broken = bytearray(stream)
        where = rng.randrange(len(stream) * 9 // 10, len(stream))
        broken[where] ^= 1 << rng.randrange(8)
        found = inflate_range(*opened(bytes(broken)), size, at, at + 500, keep_tail=1000)
        if found is not None:
            got = found.get(at, at + 500)
            assert got is not None
            assert got in data[at - 65536 : at + 66036]


def test_a_stream_inflating_past_the_declared_size_gives_nothing(
    opened: Callable[[bytes], tuple[int, int, int]],
) -> None:
    # Positions are counted back from the declared size: a pass that inflates more than it
    # cannot be placed. (A size declared a little wrong is not caught here; reading the member
    # whole, as installing does, refuses it.)
    data = _data(6, "cccc")
    fd, start, end = opened(_compress(data, "zlib6"))
    assert inflate_range(fd, start, end, 100_000, 50_000, 50_010) is None
    assert inflate_range(fd, start, end, len(data), len(data), len(data) + 1) is None
    assert inflate_range(fd, start, end, len(data), 10, 5) is None


def test_stops_when_cancelled(opened: Callable[[bytes], tuple[int, int, int]]) -> None:
    data = _data(7, "cccc")
    fd, start, end = opened(_compress(data, "zlib6"))
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(deflate_tail.Cancelled):
        inflate_range(fd, start, end, len(data), len(data) // 2, len(data) // 2 + 1, cancel=cancel)


def test_no_boundary_in_a_stored_stream_too_short(
    opened: Callable[[bytes], tuple[int, int, int]],
) -> None:
    fd, start, end = opened(_compress(b"tiny", "zlib6"))  # one fixed-Huffman block
    assert find_block(fd, start, end) is None
    assert inflate_range(fd, start, end, 4, 1, 2) is None


def test_blocks_from_a_boundary_inside_a_byte_go_on_through_stored_blocks(
    opened: Callable[[bytes], tuple[int, int, int]],
) -> None:
    # Huffman blocks end anywhere in a byte; the stored blocks after them pad to the stream's
    # own byte boundaries, which the pass keeps (priming blocks, no shifted bytes).
    data = _data(12, "cccrcrs")
    fd, start, end = opened(_compress(data, "zlib6"))
    size = len(data)
    at = int(size * 0.999)
    far = at - int(size * 0.25)
    found = inflate_range(fd, start, end, size, far, far + 1000)
    assert found is not None
    assert found.get(far, far + 1000) == data[far : far + 1000]
    assert inflate_range(fd, start, end, size, at, at + 10) is not None
    for shift in range(8):  # every priming length reads as the stream's own alignment
        _, length, written = deflate_tail._priming(shift, deflate_tail._FIRST)
        assert length % 8 == shift
        assert written == shift % 2


def _deflate(data: bytes, level: int = 6, memory: int = 8, strategy: int = 0) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15, memory, strategy)
    return compressor.compress(data) + compressor.flush()


def _every_known_byte_is_right(found: deflate_tail.Inflated, data: bytes) -> None:
    for at, held in ((found.start, found.head), (found.tail_start, found.tail)):
        for a in range(at, at + len(held), 7):
            got = found.get(a, a + 7)
            assert got is None or got == data[a : a + 7], a


@pytest.mark.parametrize(
    ("seed", "layout", "level", "memory", "strategy", "ranges"),
    [
        # Fixed-Huffman blocks (all of Z_FIXED's) let a decode from bits that are no block fall
        # into step with the real one a few codes on: what it wrote first is not the member's.
        (1, "cst", 6, 8, zlib.Z_FIXED, [904413]),
        (1036, "cc", 1, 1, zlib.Z_DEFAULT_STRATEGY, [1108587, 961499]),
        (2, "cstc", 6, 8, zlib.Z_RLE, [2_000_000, 3_000_000]),
        (3, "cstc", 9, 2, zlib.Z_FILTERED, [2_000_000, 3_000_000]),
    ],
)
def test_false_boundaries_that_fall_into_step_are_not_taken(
    opened: Callable[[bytes], tuple[int, int, int]],
    seed: int,
    layout: str,
    level: int,
    memory: int,
    strategy: int,
    ranges: list[int],
) -> None:
    data = _data(seed, layout)
    fd, start, end = opened(_deflate(data, level, memory, strategy))
    for at in ranges:
        at = min(at, len(data) - 20)
        found = inflate_range(fd, start, end, len(data), at, at + 11, keep_tail=2048)
        if found is not None:
            assert found.get(at, at + 11) == data[at : at + 11]
            _every_known_byte_is_right(found, data)


def test_a_deflate_stream_stored_inside_the_stream_is_not_mistaken_for_it(
    opened: Callable[[bytes], tuple[int, int, int]],
) -> None:
    # The member's last bytes are another raw deflate stream, which the encoder stores as they
    # are: its blocks decode, and end where the member does, but they are not the member's.
    data = _data(8, "c") + _deflate(_data(7, "cccc"))
    fd, start, end = opened(_deflate(data, 9, 9))
    for at in (1965417, len(data) - 5000, len(data) - 200_000):
        found = inflate_range(fd, start, end, len(data), at, at + 64)
        if found is not None:
            assert found.get(at, at + 64) == data[at : at + 64]
            _every_known_byte_is_right(found, data)


def test_a_file_cut_inside_the_stream_is_an_oserror_or_nothing(tmp_path: Path) -> None:
    data = _data(8, "cccc")
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15, 8, zlib.Z_FIXED)
    stream = compressor.compress(data) + compressor.flush()
    path = tmp_path / "cut.bin"
    path.write_bytes(PREFIX + stream[: len(stream) // 2])  # the member said to go on
    fd = os.open(path, os.O_RDONLY)
    try:
        for at in (len(data) // 2, len(data) - 5):
            try:
                found = inflate_range(
                    fd, len(PREFIX), len(PREFIX) + len(stream), len(data), at, at + 1
                )
            except OSError:
                continue
            assert found is None
    finally:
        os.close(fd)


def test_blocks_inside_a_stored_block_are_not_the_streams(
    opened: Callable[[bytes], tuple[int, int, int]],
) -> None:
    # Level 0 stores the member in blocks of 64 KiB; the last one holds, as they are, the bytes
    # of another raw deflate stream, whose blocks land on one another and end where the member
    # does. No block starts inside a stored block's bytes: they are not taken.
    rng = random.Random(1)
    words = [bytes(rng.choice(b"abcdefghijklmnop") for _ in range(rng.randint(2, 9)))
             for _ in range(3000)]  # fmt: skip
    text = b" ".join(rng.choice(words) for _ in range(30000))
    while len(inner := _deflate(text, 6, 8, zlib.Z_HUFFMAN_ONLY)) > 60000:
        text = text[: len(text) * 9 // 10]

    def last_stored(stream: bytes) -> int:
        """The final stored block's LEN."""
        position = 0
        while not stream[position] & 1:
            position += 5 + (stream[position + 1] | stream[position + 2] << 8)
        return stream[position + 1] | stream[position + 2] << 8

    for zeros in range(6 * 65531 - 70000, 8 * 65531, 97):  # all of ``inner`` in the last block
        data = bytes(zeros) + inner
        stream = zlib.compress(data, 0, -15)
        if last_stored(stream) >= len(inner):
            break
    assert last_stored(stream) >= len(inner)
    fd, start, end = opened(stream)
    for back in (100, 5000, 20000, 40000):
        at = len(data) - back
        found = inflate_range(fd, start, end, len(data), at, at + 50)
        if found is not None:
            assert found.get(at, at + 50) == data[at : at + 50]
            _every_known_byte_is_right(found, data)
