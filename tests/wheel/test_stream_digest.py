"""``StreamDigest``: the hash of a stream fed in chunks of any size, and the hash's state at a
given offset (where a patched wheel stops sharing its upstream's bytes)."""

from __future__ import annotations

import hashlib
import random

import pytest

from wheelpatch.wheel.digest import StreamDigest

DATA = random.Random(7).randbytes(100_000)


@pytest.mark.parametrize("branch_at", [-1, 0, 1, 4095, 4096, 65_537, 99_999, 100_000, 100_001])
@pytest.mark.parametrize("chunk", [1 << 20, 4096, 1000, 7])
def test_the_stream_and_its_branch_hash_as_hashlib_does(branch_at: int, chunk: int) -> None:
    digest = StreamDigest(branch_at=branch_at)
    for start in range(0, len(DATA), chunk):
        digest.feed(DATA[start : start + chunk])
    whole, branch = digest.close()
    assert whole == hashlib.sha256(DATA).hexdigest()
    if 0 <= branch_at <= len(DATA):
        assert branch is not None
        branch.update(b"tail")
        assert branch.hexdigest() == hashlib.sha256(DATA[:branch_at] + b"tail").hexdigest()
    else:
        assert branch is None
