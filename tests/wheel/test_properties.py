"""Property-based tests: whatever a valid wheel is mutated into, wheelpatch either refuses it
cleanly (a WheelpatchError naming the wheel, nothing written) or writes an output that passes its
own verification and installer's ``validate_record``."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from installer.sources import WheelFile

from wheelpatch import WheelpatchError, parse_config, patch_wheel
from wheelpatch.wheel.verify import verify_wheel

from ..zipcraft import Entry, build_zip, deflate, wheel_entries, wheel_filename

CONFIG = parse_config(
    {
        "local-version": "p1",
        "overrides": {"demo": {"remove": ["triton"], "add": ["extra>=1"]}},
    },
    Path("/nowhere/pyproject.toml"),
)
REQUIRES = ("triton==2.0", "keep>=1; extra == 'x'")
FILENAME = wheel_filename()
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LINE_BREAKS = "\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029"


def check(data: bytes) -> None:
    """The properties, for ``patch --verify`` and for plain ``patch``."""
    for verify in (True, False):
        check_mode(data, verify=verify)


def check_mode(data: bytes, *, verify: bool) -> None:
    """A clean refusal; or an output every checker accepts (with ``verify``); or, without it,
    an output that is only as broken as its source (members are copied, not re-checked)."""
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / FILENAME
        source.write_bytes(data)
        out = Path(scratch) / "out"
        out.mkdir()
        try:
            output = patch_wheel(source, out, CONFIG, verify=verify)
        except WheelpatchError as exc:
            message = str(exc)
            assert message.startswith(f"{FILENAME}: "), message
            assert "\n" not in message
            assert list(out.iterdir()) == []
            assert source.read_bytes() == data
            return
        assert source.read_bytes() == data
        assert output is not None
        assert [p.name for p in out.iterdir()] == [output.name]
        report = verify_wheel(output)
        if not verify and not report.ok:
            assert not verify_wheel(source).ok, report.problems
            return
        assert report.ok, report.problems
        with WheelFile.open(output) as wheel:
            wheel.validate_record(validate_contents=True)


def valid_entries() -> list[Entry]:
    return wheel_entries(requires=REQUIRES, files={"demo/__init__.py": b"A = 1\n" * 20})


VALID = build_zip(valid_entries())


def test_the_valid_baseline_is_patched() -> None:
    check(VALID)


@SETTINGS
@given(st.data())
def test_byte_flips(data: st.DataObject) -> None:
    blob = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    check(bytes(blob))


@SETTINGS
@given(cut=st.integers(0, len(VALID) - 1), insert=st.binary(max_size=40))
def test_truncation_and_insertion(cut: int, insert: bytes) -> None:
    check(VALID[:cut])
    check(VALID[:cut] + insert + VALID[cut:])


@SETTINGS
@given(st.data())
def test_member_mutations(data: st.DataObject) -> None:
    entries = valid_entries()
    index = data.draw(st.integers(0, len(entries) - 1))
    action = data.draw(st.sampled_from(["rename", "duplicate", "drop", "move", "recompress"]))
    entry = entries[index]
    if action == "rename":
        new_name = data.draw(st.text(min_size=0, max_size=30))
        entries[index] = Entry(new_name, entry.data)
    elif action == "duplicate":
        entries.insert(data.draw(st.integers(0, len(entries))), Entry(entry.name, entry.data))
    elif action == "drop":
        del entries[index]
    elif action == "move":
        entries.insert(data.draw(st.integers(0, len(entries) - 1)), entries.pop(index))
    else:
        entries[index] = Entry(entry.name, entry.data, method=0 if entry.method else 8)
    check(build_zip(entries))


@SETTINGS
@given(st.data())
def test_record_mutations(data: st.DataObject) -> None:
    entries = valid_entries()
    record = next(e for e in entries if str(e.name).endswith("RECORD"))
    rows = record.data.decode().splitlines(keepends=True)
    action = data.draw(st.sampled_from(["drop", "duplicate", "edit", "append"]))
    index = data.draw(st.integers(0, len(rows) - 1))
    if action == "drop":
        del rows[index]
    elif action == "duplicate":
        rows.insert(index, rows[index])
    elif action == "edit":
        row = rows[index]
        position = data.draw(st.integers(0, max(0, len(row) - 1)))
        rows[index] = row[:position] + data.draw(st.text(max_size=5)) + row[position + 1 :]
    else:
        rows.append(data.draw(st.text(max_size=60)) + "\n")
    new = "".join(rows).encode("utf-8", "surrogatepass")
    entries[entries.index(record)] = Entry(record.name, new)
    check(build_zip(entries))


@SETTINGS
@given(
    header=st.sampled_from(["Summary", "Requires-Dist", "Version", "Name", "Keywords"]),
    before=st.text(max_size=10),
    char=st.sampled_from(LINE_BREAKS),
    after=st.text(max_size=20),
)
def test_injected_line_breaks(header: str, before: str, char: str, after: str) -> None:
    metadata = (
        "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
        f"{header}: {before}{char}{after}\n\nbody\n"
    )
    encoded = metadata.encode("utf-8", "surrogatepass")
    check(build_zip(wheel_entries(metadata=encoded)))


@SETTINGS
@given(payload=st.binary(max_size=64), declared=st.integers(0, 1 << 20))
def test_lying_deflate_members(payload: bytes, declared: int) -> None:
    entries = valid_entries()
    entries[0] = Entry(
        entries[0].name, entries[0].data, payload=deflate(payload) + payload, file_size=declared
    )
    check(build_zip(entries))
