"""Inflating a range near the end of a raw deflate stream without inflating what comes before.

A deflate stream has no index: inflating byte N normally means inflating bytes 0 to N. But the
stream is a sequence of blocks, and a block can be decoded from its first bit given the 32 KiB
it may copy from (its window). :func:`inflate_range` finds the first block boundary after a
guessed point (a dynamic-Huffman block header that zlib accepts, found by trying each bit
position that a vectorised test of the header's fixed fields lets through), then inflates from
there to the stream's end twice in step: once with a window of zero bytes and once with one of
``0xff`` bytes. A byte both agree on was not copied from the unknown window (it is a literal, or
a copy of bytes that were); once the two outputs agree over a whole window they agree for good,
and the second stops. The stream must end exactly where the member does, which gives the
position of every byte inflated (counted back from the member's size) and rejects a point that
only looked like a boundary. What lies before the block or was copied from the unknown window is
never returned: the caller inflates from the start instead.

A crafted stream can hold bits that decode as a block and fall into step with the real blocks
later; the bytes before that point are then not the member's. Readers of the result that must
not be fooled by a hostile archive check what they read against the whole member.
"""

from __future__ import annotations

import os
import re
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Inflated", "find_block", "inflate_range"]

_WINDOW = 1 << 15
_ZEROS = bytes(_WINDOW)
_ONES = b"\xff" * _WINDOW
#: Compressed bytes scanned for a block header at a time.
_SCAN = 16 << 10
#: Compressed bytes a candidate header is tried on, first without a window, then with one.
_TRY = 512
_TRY_MORE = 2048
#: Bytes a candidate must inflate (from ``_TRY_MORE`` compressed ones) to be tried further.
_TRY_OUTPUT = 1024
_CHUNK = 1 << 20
#: Uncompressed bytes inflated at most per call, whatever the ratio.
_PIECE = 4 << 20
_NONZERO = re.compile(rb"[^\x00]")
#: The candidates a search tries at most before giving up (the caller inflates from the start).
MAX_TRIES = 400_000


class Cancelled(Exception):
    """The caller no longer wants the bytes (checked between compressed chunks)."""


@dataclass(frozen=True, slots=True)
class Inflated:
    """What one pass from a block boundary to the stream's end kept: the output's first bytes
    (``head``, from ``start``, where the block's output lies in the member) and the member's
    last bytes (``tail``, from ``tail_start``), as inflated with a window of zeros; and until
    ``agreed_from``, where the two passes agreed over a whole window and so for good, the same
    bytes as inflated with a window of ``0xff`` (``head_other``, ``tail_other``, as long or
    cut there). A byte both give is the member's; one that differs was copied from the window
    nobody knows."""

    start: int
    head: bytes
    tail_start: int
    tail: bytes
    agreed_from: int
    head_other: bytes
    tail_other: bytes

    def get(self, start: int, end: int) -> bytes | None:
        """The member's bytes ``start`` to ``end`` if this pass holds them, known."""
        for at, mine, other in (
            (self.start, self.head, self.head_other),
            (self.tail_start, self.tail, self.tail_other),
        ):
            if at <= start and end <= at + len(mine):
                got = mine[start - at : end - at]
                unsure = min(end, self.agreed_from) - start
                if unsure > 0 and other[start - at : start - at + unsure] != got[:unsure]:
                    return None
                return got
        return None


def _candidates(window: bytes, limit: int) -> Iterator[int]:
    """Bit positions below ``limit`` (bits from the window's first byte) where the fixed
    fields of a dynamic-Huffman block header hold: BTYPE 2, HLIT and HDIST at most 29."""
    x = int.from_bytes(window, "little")
    mask = (x >> 2) & ~(x >> 1)  # bit 1 clear, bit 2 set: BTYPE = 2 (bit 0 is BFINAL)
    mask &= ~((x >> 4) & (x >> 5) & (x >> 6) & (x >> 7))  # HLIT (bits 3-7) is not 30 or 31
    mask &= ~((x >> 9) & (x >> 10) & (x >> 11) & (x >> 12))  # nor HDIST (bits 8-12)
    mask &= (1 << limit) - 1
    flags = mask.to_bytes((limit + 7) // 8, "little")
    for found in _NONZERO.finditer(flags):
        byte = found.start()
        value = flags[byte]
        for bit in range(8):
            if value >> bit & 1:
                yield byte * 8 + bit


def _after_stored(window: bytes, limit: int) -> Iterator[int]:
    """Byte positions (from the window's first byte) where a block follows a stored block whose
    LEN and NLEN (complements, at a byte boundary below ``limit``) the window holds: a stored
    block ends at a byte boundary, so the next block starts on one. Incompressible data (a
    compressed section, a fat binary) is stored, and holds no Huffman header to find."""
    x = int.from_bytes(window, "little")
    y = x ^ (x >> 16)  # at bit 8i: LEN ^ NLEN of a stored block whose LEN is at byte i
    ones = y
    for shift in (1, 2, 4, 8):  # bit 8i set where bits 8i to 8i+15 of y are all set
        ones &= ones >> shift
    ones &= _byte_starts(limit)
    flags = ones.to_bytes((limit * 8 + 7) // 8, "little")
    for found in _NONZERO.finditer(flags):
        if flags[found.start()] & 1:
            byte = found.start()
            length = window[byte] | window[byte + 1] << 8
            yield byte + 4 + length


_BYTE_STARTS: dict[int, int] = {}


def _byte_starts(count: int) -> int:
    """An int with bits 0, 8, 16, ... set, ``count`` of them."""
    mask = _BYTE_STARTS.get(count)
    if mask is None:
        mask = _BYTE_STARTS[count] = int.from_bytes(b"\x01" * count, "little")
    return mask


def _accepted(data: bytes) -> bool:
    """Whether ``data`` begins with a block zlib decodes (with a window of zeros) to at least
    :data:`_TRY_OUTPUT` bytes, or to a stream's end."""
    try:
        zlib.decompressobj(-15).decompress(data[:_TRY], 1)
    except zlib.error as exc:
        if "too far back" not in str(exc):
            return False
    trial = zlib.decompressobj(-15, zdict=_ZEROS)
    try:
        out = trial.decompress(data[:_TRY_MORE], 2 * _TRY_MORE)
    except zlib.error:
        return False
    return len(out) >= _TRY_OUTPUT or trial.eof


def _shifted(data: bytes, bit: int) -> bytes:
    """``data`` from its bit ``bit`` (0-7) on, as bytes (the last one padded with zeros)."""
    if not bit:
        return data
    return (int.from_bytes(data, "little") >> bit).to_bytes(len(data), "little")


def find_block(fd: int, start: int, stop: int, tries: list[int] | None = None) -> int | None:
    """The bit position (from the file's start) of a block header at or after byte ``start``
    of the file open as ``fd``, before byte ``stop`` (the stream's end), that zlib accepts and
    that inflates :data:`_TRY_OUTPUT` bytes with a window of zeros: the first one after a stored
    block in the first window that has one, else the first dynamic-Huffman header; None if
    there is none (or :data:`MAX_TRIES` candidates were refused). ``tries`` counts them."""
    count = 0
    position = start
    found: int | None = None
    while position < stop and found is None and count <= MAX_TRIES:
        window = os.pread(fd, min(_SCAN, stop - position) + _TRY_MORE, position)
        limit = min(_SCAN, stop - position)
        for after in _after_stored(window, min(limit, len(window) - 4)):
            count += 1
            at = position + after
            if at < stop and _accepted(os.pread(fd, _TRY_MORE, at)):
                found = at * 8
                break
        shifted: dict[int, bytes] = {}
        for candidate in () if found is not None else _candidates(window, limit * 8):
            count += 1
            if count > MAX_TRIES:
                break
            byte, bit = divmod(candidate, 8)
            data = shifted.get(bit)
            if data is None:
                data = shifted[bit] = _shifted(window, bit)
            if _accepted(data[byte:]):
                found = position * 8 + candidate
                break
        position += _SCAN
    if tries is not None:
        tries.append(count)
    return found


def _stream(
    fd: int, bit: int, stop: int, cancel: threading.Event | None
) -> Iterator[tuple[bytes, bool]]:
    """The compressed bytes from bit position ``bit`` to byte ``stop``, realigned to bytes, in
    chunks, each with whether it is the last."""
    position, shift = divmod(bit, 8)
    while position < stop:
        if cancel is not None and cancel.is_set():
            raise Cancelled
        size = min(_CHUNK, stop - position)
        # One byte more than the chunk: its low bits end the chunk's last shifted byte.
        data = os.pread(fd, size + (1 if shift and position + size < stop else 0), position)
        if len(data) < size:
            raise OSError(f"the file ends at {position + len(data)}, before {stop}")
        yield _shifted(data, shift)[:size], position + size >= stop
        position += size


def _last_difference(a: bytes, b: bytes) -> int:
    """The index of the last byte where ``a`` and ``b`` (as long) differ, -1 if none."""
    if a == b:
        return -1
    low, high = 0, len(a)
    while high - low > 64:  # the last differing byte lies in [low, high)
        middle = (low + high) // 2
        if a[middle:high] != b[middle:high]:
            low = middle
        else:
            high = middle
    return max(i for i in range(low, high) if a[i] != b[i])


def _pass(
    fd: int,
    bit: int,
    stop: int,
    size: int,
    keep: tuple[int, int],
    keep_tail: int,
    module: Any,
    cancel: threading.Event | None,
    until: int | None = None,
) -> _State | None:
    """Inflate from the block at ``bit`` to the stream's end at byte ``stop`` (with ``until``,
    only that many bytes) with both windows, keeping output bytes ``keep`` (counted from the
    block's first) and the last ``keep_tail``; None if the stream does not end exactly at
    ``stop`` (then ``bit`` was no block boundary), inflates to more than ``size``, or is not
    valid deflate."""
    first = module.decompressobj(-15, zdict=_ZEROS)
    second: Any = module.decompressobj(-15, zdict=_ONES)
    state = _State(keep, keep_tail)
    last = False
    try:
        for chunk, is_last in _stream(fd, bit, stop, cancel):
            last = is_last
            data = chunk
            while data and not first.eof:
                piece = first.decompress(data, _PIECE)
                other = None if second is None else second.decompress(data, _PIECE)
                data = first.unconsumed_tail
                if state.take(piece, other):
                    second = None  # the same window from here on: the same bytes
                if state.produced > size:
                    return None
                if until is not None and state.produced >= until:
                    return state
            if first.eof:
                break
        if not first.eof:  # output held back by the last call's limit
            piece = first.flush()
            state.take(piece, None if second is None else second.flush())
    except module.error:
        return None
    # The end: the final block's last bit in the member's last byte, nothing after it (with
    # a shift, the last realigned byte may hold only that byte's padding).
    if until is not None or not first.eof or not last or state.produced > size:
        return None
    if len(first.unused_data) > (1 if bit % 8 else 0):
        return None
    return state


class _State:
    """One pass's bookkeeping: the bytes inflated, those kept of both windows' outputs, and
    where the outputs agreed for good (``agreed``: counted from the block's first byte)."""

    def __init__(self, keep: tuple[int, int], keep_tail: int) -> None:
        self.keep = keep
        self.keep_tail = keep_tail
        self.produced = 0
        self.agreed: int | None = None
        self.kept = bytearray()
        self.kept_other = bytearray()
        #: The last pieces, each with the other window's (None once they agree for good).
        self.tail: list[tuple[bytes, bytes | None]] = []
        self._tail_size = 0
        self._same = b""  # the outputs' last bytes, equal in both, since their last difference

    def take(self, piece: bytes, other: bytes | None) -> bool:
        """Account for the next ``piece`` of output (and ``other``, the same inflated with the
        other window, while they may differ); whether they now agree over a whole window."""
        agree = False
        if other is not None:
            difference = _last_difference(piece, other)
            self._same = (
                piece[difference + 1 :] if difference >= 0 else (self._same + piece)[-_WINDOW:]
            )
            agree = len(self._same) >= _WINDOW
        low, high = self.keep[0] - self.produced, self.keep[1] - self.produced
        if high > 0 and low < len(piece):
            self.kept += piece[max(low, 0) : high]
            if other is not None:
                self.kept_other += other[max(low, 0) : high]
        if self.keep_tail and piece:
            self.tail.append((piece, other))
            self._tail_size += len(piece)
            while self._tail_size - len(self.tail[0][0]) >= self.keep_tail:
                self._tail_size -= len(self.tail.pop(0)[0])
        self.produced += len(piece)
        if agree:
            self.agreed = self.produced
        return agree

    def tails(self) -> tuple[bytes, bytes]:
        """The last ``keep_tail`` bytes of both outputs (the other's cut where they agreed)."""
        mine = b"".join(piece for piece, _ in self.tail)
        other = b"".join(theirs for _, theirs in self.tail if theirs is not None)
        cut = len(mine) - self.keep_tail
        return mine[max(cut, 0) :], other[max(cut, 0) :]

    def found(self, size: int) -> Inflated:
        """What this pass, which inflated to the member's end, holds."""
        at = size - self.produced
        tail, tail_other = self.tails()
        agreed = at + (self.produced if self.agreed is None else self.agreed)
        return Inflated(
            at, bytes(self.kept), size - len(tail), tail, agreed, bytes(self.kept_other), tail_other
        )


def inflate_range(
    fd: int,
    data_offset: int,
    end_offset: int,
    size: int,
    start: int,
    end: int,
    *,
    keep_tail: int = 0,
    module: Any = zlib,
    cancel: threading.Event | None = None,
) -> Inflated | None:
    """Bytes ``start`` to ``end`` of the member whose raw deflate stream lies at bytes
    ``data_offset`` to ``end_offset`` of the file open as ``fd`` and inflates to ``size``
    bytes, inflated from a block boundary found before them (the pass to the stream's end also
    keeps the member's last ``keep_tail`` bytes); None where no block boundary in reach gives
    them (the caller inflates from the start). ``module`` is zlib or a module with its API
    (ISA-L's). Raises :class:`Cancelled` once ``cancel`` is set, OSError if the file is short.
    """
    compressed = end_offset - data_offset
    if not 0 <= start < end <= size or compressed <= 0:
        return None
    # Where ``start`` would be if the member compressed evenly, a little before. A pass that
    # would start in the member's first quarter is not made: inflating from the start is as
    # cheap.
    floor = data_offset + compressed // 4
    guess = max(floor, data_offset + compressed * start // size - (64 << 10))
    tried: set[int] = set()
    for _ in range(4):
        guess = max(guess, floor)
        if guess in tried:
            return None
        tried.add(guess)
        bit = find_block(fd, guess, end_offset)
        if bit is None:
            return None
        slack = 1 << 20  # kept before the range too: the boundary lands before it, by how much
        keep = (0, end - start + slack)
        first = _pass(fd, bit, end_offset, size, keep, keep_tail, module, cancel)
        if first is None:
            guess = bit // 8 + 1  # not a boundary after all: the next one
            continue
        found = first.found(size)
        if found.get(start, end) is not None:
            return found
        at = found.start
        ratio = (end_offset - bit / 8) / max(first.produced, 1)
        if at > start:  # the boundary lies past the range: try well before it
            guess = int(bit // 8 - (at - start) * ratio * 1.5) - (256 << 10)
            continue
        if end <= at + len(found.head) or found.tail_start <= start:
            # Held, but copied from the window before the boundary (text repeating within
            # 32 KiB can carry such bytes far): from further back, the chain may have ended.
            guess = bit // 8 - max(end_offset - bit // 8, 1 << 20)
            continue
        # The range lies past what this pass kept: inflate up to it again from the same
        # boundary, whose place in the member is now known.
        again = _pass(
            fd, bit, end_offset, size, (start - at, end - at), 0, module, cancel, until=end - at
        )
        if again is None or len(again.kept) != end - start:
            return None
        # The same boundary and windows: the same outputs, agreeing where the first did.
        result = Inflated(
            start,
            bytes(again.kept),
            found.tail_start,
            found.tail,
            found.agreed_from,
            bytes(again.kept_other),
            found.tail_other,
        )
        return result if result.get(start, end) is not None else None
    return None
