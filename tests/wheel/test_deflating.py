"""``Deflating``: a member compressed in parts is byte for byte the member compressed whole (the
writer compresses RECORD's rows of the source before the source's hash is known)."""

from __future__ import annotations

import random
import zlib

import pytest

from wheelpatch.wheel.archive import DEFLATED, STORED, Deflating

RECORD_LIKE = b"".join(
    f"torch/lib/file_{i}.py,sha256={random.Random(i).randbytes(32).hex()[:43]},{i * 7}\n".encode()
    for i in range(20_000)
)


@pytest.mark.parametrize("method", [DEFLATED, STORED], ids=["deflate", "stored"])
@pytest.mark.parametrize("cut", [0, 1, 4096, 65_536, len(RECORD_LIKE) // 2, len(RECORD_LIKE)])
def test_in_two_parts_as_in_one(method: int, cut: int) -> None:
    whole = Deflating(method).end(RECORD_LIKE)
    parts = Deflating(method, RECORD_LIKE[:cut]).end(RECORD_LIKE[cut:])
    assert parts == whole
    payload, crc, size = whole
    assert crc == zlib.crc32(RECORD_LIKE)
    assert size == len(RECORD_LIKE)
    if method == DEFLATED:
        assert zlib.decompress(payload, -15) == RECORD_LIKE
        assert len(payload) < len(RECORD_LIKE)
    else:
        assert payload == RECORD_LIKE


def test_many_random_parts_as_one() -> None:
    rng = random.Random(3)
    started = Deflating(DEFLATED)
    position = 0
    while position < len(RECORD_LIKE) - 1:
        step = rng.randint(1, 200_000)
        started.feed(RECORD_LIKE[position : position + step])
        position += step
    assert started.end(RECORD_LIKE[position:]) == Deflating(DEFLATED, RECORD_LIKE).end()
