"""What both commands share at the terminal: one-line usage errors, ``error:`` lines, standard
streams whose reader may leave early, JSON reports that are printed on failures too, and pip's
index options where pip resolves."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO, cast

from ..errors import EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_OUTPUT, WheelpatchError

__all__ = [
    "Parser",
    "add_index_options",
    "dump",
    "error",
    "json_on_error",
    "message",
    "standard_streams",
]


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit code 2, like every other error
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {message}\n")


def error(message: str) -> None:
    print("error: " + message.replace("\n", " "), file=sys.stderr)


class _ReaderMayLeave:
    """A standard stream whose reader may leave (``| head``, ``2>&1 | head -1``).

    Once a write fails with a broken pipe, the stream's descriptor is pointed at /dev/null and
    the rest is dropped: the command still does all its work and exits with its real status, and
    what it says never depends on whether anyone still listens."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.left = False

    def write(self, text: str) -> int:
        if not self.left:
            try:
                self._stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.left:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop()

    def isatty(self) -> bool:
        return not self.left and self._stream.isatty()

    def _drop(self) -> None:
        self.left = True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())  # nothing buffered fails again at exit
            os.close(devnull)


@contextlib.contextmanager
def standard_streams() -> Iterator[TextIO]:
    """stdout to write on, and stderr, both of which the reader may close early."""
    out = _ReaderMayLeave(sys.stdout)
    err = _ReaderMayLeave(sys.stderr)
    with contextlib.redirect_stderr(cast("TextIO", err)):
        yield cast("TextIO", out)


def json_on_error(
    command: Callable[[argparse.Namespace, TextIO], int],
    args: argparse.Namespace,
    out: TextIO,
    about: dict[str, Any],
) -> int:
    """Run ``command``; if it fails, still print one JSON document, saying why (``--json``)."""
    try:
        return command(args, out)
    except (WheelpatchError, OSError, KeyboardInterrupt) as exc:
        code = (
            exc.exit_code
            if isinstance(exc, WheelpatchError)
            else EXIT_INTERRUPTED
            if isinstance(exc, KeyboardInterrupt)
            else EXIT_OUTPUT
        )
        said = "interrupted" if isinstance(exc, KeyboardInterrupt) else message(exc)
        dump(out, {**about, "error": said, "exit_code": code})
        raise


def message(error: BaseException) -> str:
    if isinstance(error, OSError) and not isinstance(error, WheelpatchError):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or error}"
    return "; ".join(getattr(error, "errors", None) or [str(error)])


def dump(out: TextIO, data: object) -> None:
    json.dump(data, out, indent=2)
    out.write("\n")


def add_index_options(parser: argparse.ArgumentParser) -> None:
    """pip's index options, as ``wheelpatch-install`` and ``wheelpatch check cycles`` pass them
    on: ``--index-url``, ``--extra-index-url``, ``--find-links``, ``--no-index``."""
    parser.add_argument("--index-url", metavar="URL", help="pip's base package index URL")
    parser.add_argument(
        "--extra-index-url",
        action="append",
        default=[],
        metavar="URL",
        help="another package index for pip (may be repeated)",
    )
    parser.add_argument(
        "--find-links",
        action="append",
        default=[],
        metavar="PATH",
        help="a directory or page of wheels for pip (may be repeated)",
    )
    parser.add_argument("--no-index", action="store_true", help="pip ignores package indexes")
