"""Inflating a range near the end of a raw deflate stream without inflating what comes before.

A deflate stream has no index: inflating byte N normally means inflating bytes 0 to N. But the
stream is a sequence of blocks, and a block can be decoded from its first bit given the 32 KiB
it may copy from (its window). :func:`inflate_range` finds a block boundary after a guessed
point and inflates from there:

- **Candidates**: the block after a stored block (whose LEN and NLEN, complements, are found
  for every byte at once on a big integer; a stored block ends on a byte boundary), else a
  dynamic-Huffman header (its fixed fields tested for every bit position at once), each tried
  with zlib.
- **Confirmation**: bits can decode as a block that is none and fall into step with the real
  blocks a few codes later (fixed-Huffman blocks resynchronise quickly), or be a stream stored
  inside the stream. A candidate counts only if inflating from an earlier candidate 64 to 256
  KiB before it (or from the stream's start) lands on it exactly between two blocks: those bits
  followed by an empty final block must end the stream (:func:`_lands`). A false earlier
  candidate's decode fails long before; a true one's is the stream's own, which reads a stored
  block as one; and 64 KiB is more than a stored block holds.
- **Alignment**: the block is inflated with the stream's own byte alignment (a stored block
  pads to it), behind priming blocks as long, modulo 8, as the bits before it in its byte
  (:func:`_primed`); no byte of the stream is shifted.
- **Known bytes**: it is inflated to the stream's end twice in step, with two windows of
  different bytes (the priming's literal one of them). A byte both give is the member's (a
  literal, or a copy of bytes that are); one that differs was copied from the window nobody
  knows. Once the two outputs agree over a whole window they agree for good, and the second
  stops.
- **Placement**: the stream must end exactly where the member does, which gives the position of
  every byte inflated, counted back from the member's declared size.

What lies before the block or was copied from the unknown window is never returned: the caller
inflates from the start instead. A stream changed after the range in a way that still inflates
(a flipped bit, or bits crafted so) places the bytes wrongly, since positions count back from
the end: readers that must not be fooled check what they read (wheelpatch.check.elf does).
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
#: The two windows a pass inflates with, and the literal each one's priming block writes (see
#: :func:`_primed`): bytes of the window, as far as the block that follows can tell.
_FIRST, _SECOND = 0x90, 0xFF
_FIRST_WINDOW = bytes([_FIRST]) * _WINDOW
_SECOND_WINDOW = bytes([_SECOND]) * _WINDOW
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
    last bytes (``tail``, from ``tail_start``), as inflated with a window of ``0x90`` bytes; and
    until ``agreed_from``, where the two passes agreed over a whole window and so for good, the
    same bytes as inflated with a window of ``0xff`` (``head_other``, ``tail_other``, as long
    or cut there). A byte both give is the member's; one that differs was copied from the window
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
    """Whether ``data`` begins with a block zlib decodes (with a made-up window) to at least
    :data:`_TRY_OUTPUT` bytes, or to a stream's end."""
    try:
        zlib.decompressobj(-15).decompress(data[:_TRY], 1)
    except zlib.error as exc:
        if "too far back" not in str(exc):
            return False
    trial = zlib.decompressobj(-15, zdict=_FIRST_WINDOW)
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


def _blocks(
    fd: int, start: int, stop: int, counter: list[int], cancel: threading.Event | None
) -> Iterator[int]:
    """Bit positions from byte ``start`` on (before byte ``stop``, the stream's end) where a
    block zlib accepts seems to begin, in order within each window scanned: first those after
    a stored block, then the dynamic-Huffman headers. ``counter[0]`` counts the candidates
    tried; the scan ends at :data:`MAX_TRIES`."""
    position = start
    while position < stop and counter[0] <= MAX_TRIES:
        if cancel is not None and cancel.is_set():
            raise Cancelled
        window = os.pread(fd, min(_SCAN, stop - position) + _TRY_MORE, position)
        limit = min(_SCAN, stop - position, len(window) - 4)
        if limit <= 0:
            return  # the file ends before the stream does: nothing to find
        stored = False
        for after in _after_stored(window, limit):
            counter[0] += 1
            at = position + after
            if at < stop and _accepted(os.pread(fd, _TRY_MORE, at)):
                stored = True
                yield at * 8
        shifted: dict[int, bytes] = {}
        # A window holding a stored block's end is mostly its payload, where every Huffman
        # header is a false one (and incompressible data lets through a tenth of all bits).
        for candidate in () if stored else _candidates(window, limit * 8):
            counter[0] += 1
            if counter[0] > MAX_TRIES:
                return
            byte, bit = divmod(candidate, 8)
            data = shifted.get(bit)
            if data is None:
                data = shifted[bit] = _shifted(window, bit)
            if _accepted(data[byte:]):
                yield position * 8 + candidate
        position += _SCAN


#: A candidate is confirmed by inflating from an earlier one (or the stream's start) this far
#: back, at most, and at least :data:`_CONFIRM_NEAR` back: more than a stored block's bytes,
#: so that two blocks of a stream stored inside the stream (which land on one another, and
#: lie in one stored block: a stored block breaks a stream that crosses it) never confirm
#: each other, and a true earlier boundary reads the stored block as one.
_CONFIRM_FAR = 256 << 10
_CONFIRM_NEAR = 65535 + 5
#: Earlier candidates tried to confirm one, at most; output inflated while confirming, at most.
_CONFIRM_TRIES = 64
_CONFIRM_OUTPUT = 64 << 20
#: An empty final fixed-Huffman block: BFINAL 1, BTYPE 01, the end-of-block code (7 zero bits).
_EMPTY_FINAL = 0b011
_EMPTY_FINAL_BITS = 10


def _reversed(code: int, length: int) -> int:
    """A Huffman code as deflate packs it: its first bit (the most significant) first."""
    return int(format(code, f"0{length}b")[::-1], 2)


def _fixed_block(literal: int | None) -> tuple[int, int]:
    """A non-final fixed-Huffman block (BFINAL 0, BTYPE 01) holding ``literal`` (144 to 255:
    a 9-bit code) or nothing, then the end-of-block code: (its bits, how many)."""
    bits, length = 0b010, 3
    if literal is not None:
        assert 144 <= literal <= 255
        bits |= _reversed(0b110010000 + literal - 144, 9) << length
        length += 9
    return bits, length + 7  # end of block: seven zero bits


def _priming(shift: int, literal: int) -> tuple[int, int, int]:
    """Complete non-final blocks whose length in bits is ``shift`` modulo 8 (an empty fixed
    block is 10 bits, one holding a 9-bit literal 19): (their bits, how many, bytes written)."""
    blocks: list[int | None] = []
    if shift % 2:
        blocks.append(literal)
    while sum(_fixed_block(b)[1] for b in blocks) % 8 != shift:
        blocks.append(None)
    bits = length = 0
    for block in blocks:
        more, count = _fixed_block(block)
        bits |= more << length
        length += count
    return bits, length, sum(1 for b in blocks if b is not None)


def _primed(first_byte: int, bit: int, literal: int) -> bytes:
    """What to inflate before the stream's bytes after the one holding bit ``bit`` (whose value
    is ``first_byte``), so that the block at ``bit`` is read with the stream's own byte
    alignment (a stored block pads to it): priming blocks as long, modulo 8, as the bits of
    that byte before ``bit``, then its bits from ``bit`` on. The priming writes ``literal``
    when the shift is odd: the window's bytes must be that byte too."""
    shift = bit % 8
    bits, length, _ = _priming(shift, literal)
    whole = length // 8  # length = 8 * whole + shift
    value = bits | ((first_byte >> shift) << shift) << (8 * whole)
    return value.to_bytes(whole + 1, "little")


def _lands(fd: int, start: int, end: int) -> bool:
    """Whether inflating from bit ``start`` reaches bit ``end`` exactly between two blocks:
    the bits from ``start`` to ``end`` followed by an empty final block must end the stream,
    with nothing left over (inside a block, those bits would be read as its codes)."""
    first, last = start // 8, end // 8
    if last <= first:
        return False
    data = os.pread(fd, last - first + 1, first)
    if len(data) < last - first + 1:
        return False
    primed = _primed(data[0], start, _FIRST)
    low = end % 8
    final = (data[-1] & ((1 << low) - 1)) | (_EMPTY_FINAL << low)
    stream = primed + data[1:-1] + final.to_bytes((low + _EMPTY_FINAL_BITS + 7) // 8, "little")
    inflater = zlib.decompressobj(-15, zdict=_FIRST_WINDOW)
    produced = 0
    try:
        while stream and not inflater.eof:
            produced += len(inflater.decompress(stream, _PIECE))
            stream = inflater.unconsumed_tail
            if produced > _CONFIRM_OUTPUT:
                return False
        if not inflater.eof:
            inflater.flush()
    except zlib.error:
        return False
    return inflater.eof and not inflater.unused_data


def _confirmed(
    fd: int, bit: int, origin: int, counter: list[int], cancel: threading.Event | None
) -> bool:
    """Whether the candidate at ``bit`` is a block boundary of the stream starting at byte
    ``origin``: inflating from the stream's start, or from an earlier candidate at least
    :data:`_CONFIRM_NEAR` bytes before it, lands on it (:func:`_lands`). A candidate that only
    looked like a block (bits of another block's codes, or of a stored block's bytes, which a
    decode can fall into step with the real blocks from) is not landed on; nor, but by
    chance, is one by a false earlier candidate, whose decode stops long before (a true one's
    is the stream's own)."""
    byte = bit // 8
    if byte - origin <= _CONFIRM_FAR:
        return _lands(fd, origin * 8, bit)
    earlier = _blocks(fd, byte - _CONFIRM_FAR, byte - _CONFIRM_NEAR, counter, cancel)
    for tried, start in enumerate(earlier):
        if tried >= _CONFIRM_TRIES or start >= bit:
            return False
        if _lands(fd, start, bit):
            return True
    return False


def find_block(
    fd: int,
    start: int,
    stop: int,
    origin: int | None = None,
    tries: list[int] | None = None,
    cancel: threading.Event | None = None,
) -> int | None:
    """The bit position (from the file's start) of the first confirmed block boundary at or
    after byte ``start`` of the deflate stream that starts at byte ``origin`` (default:
    ``start``) and ends before byte ``stop``, in the file open as ``fd``: a block zlib accepts,
    which inflating from an earlier boundary lands on (:func:`_confirmed`). None if there is
    none (or :data:`MAX_TRIES` candidates were refused). ``tries`` counts them."""
    counter = [0]
    found = None
    for candidate in _blocks(fd, start, stop, counter, cancel):
        if _confirmed(fd, candidate, start if origin is None else origin, counter, cancel):
            found = candidate
            break
    if tries is not None:
        tries.append(counter[0])
    return found


def _stream(
    fd: int, position: int, stop: int, cancel: threading.Event | None
) -> Iterator[tuple[bytes, bool]]:
    """The file's bytes from ``position`` to ``stop``, in chunks, each with whether it is the
    last."""
    while position < stop:
        if cancel is not None and cancel.is_set():
            raise Cancelled
        size = min(_CHUNK, stop - position)
        data = os.pread(fd, size, position)
        if len(data) < size:
            raise OSError(f"the file ends at {position + len(data)}, before {stop}")
        yield data, position + size >= stop
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
    first = module.decompressobj(-15, zdict=_FIRST_WINDOW)
    second: Any = module.decompressobj(-15, zdict=_SECOND_WINDOW)
    lead = os.pread(fd, 1, bit // 8)
    if not lead:
        raise OSError(f"the file ends at {bit // 8}, before {stop}")
    # A priming literal is output before the block's (0x90 or 0xff, as each window's bytes):
    # it lies where the window's last byte would, and counts as one of the window's.
    mine = _primed(lead[0], bit, _FIRST)
    theirs = _primed(lead[0], bit, _SECOND)
    state = _State(keep, keep_tail)
    last = bit // 8 + 1 >= stop
    try:
        # The priming bytes first (each window its own literal, the same length), then the
        # stream's own bytes, the same for both.
        piece = first.decompress(mine, _PIECE)
        other = second.decompress(theirs, _PIECE)
        if first.unconsumed_tail or second.unconsumed_tail:
            return None  # a block that writes 4 MiB from two bytes: not one of the stream's
        state.take(piece, other)
        for chunk, is_last in _stream(fd, bit // 8 + 1, stop, cancel):
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
    # The end: the final block's last bit in the member's last byte, nothing after it.
    if until is not None or not first.eof or not last or state.produced > size:
        return None
    if first.unused_data:
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
    guess = data_offset + compressed * start // size - (64 << 10)
    tried: set[int] = set()
    spent = 0  # bytes inflated by the passes so far: past half the member's, inflate it whole
    for _ in range(4):
        guess = max(guess, floor)
        if guess in tried or spent > size // 2:
            return None
        tried.add(guess)
        bit = find_block(fd, guess, end_offset, data_offset, cancel=cancel)
        if bit is None:
            return None
        slack = 1 << 20  # kept before the range too: the boundary lands before it, by how much
        keep = (0, end - start + slack)
        first = _pass(fd, bit, end_offset, size, keep, keep_tail, module, cancel)
        if first is None:
            guess = bit // 8 + 1  # not a boundary after all: the next one
            continue
        spent += first.produced
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
