"""The ``wheelpatch`` console script: ``wheelpatch patch`` starts hashing the wheels it names
before the rest of wheelpatch is loaded (see :mod:`wheelpatch.wheel.hash_child`), then runs
:func:`wheelpatch.cli.wheelpatch.main`.
"""

from __future__ import annotations

import os
import sys

from ..wheel import hash_child

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["console", "main"]

#: Options after which ``patch`` hashes nothing (or not at once): no child is started for them.
_NOT_HASHING = ("-h", "--help", "--dry-run", "--version")


def console() -> None:
    """The console script: :func:`main`, then, after ``patch``, an exit that skips tearing the
    interpreter down (freeing the objects of 13,000 members one by one, 10 ms on torch: every
    file is closed and every thread joined by then)."""
    code = main()
    if sys.argv[1:2] == ["patch"]:
        import contextlib  # noqa: PLC0415 - not on the way to the first hash

        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to say
                stream.flush()
        os._exit(code)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["patch"] and not any(_not_hashing(arg) for arg in args):
        hash_child.start_ahead(_wheels(args[1:]))
    try:
        from .wheelpatch import main as run  # noqa: PLC0415 - after the child is started

        return run(args)
    finally:
        hash_child.discard()


#: The options of ``patch`` that take a value (the next argument, unless joined with ``=``).
_WITH_VALUE = ("--config", "-o", "--output-dir", "--index")


def _wheels(args: Sequence[str]) -> list[str]:
    """The positional arguments of ``patch``: the wheels, in the order it hashes them."""
    wheels: list[str] = []
    taking = False
    for number, arg in enumerate(args):
        if taking:
            taking = False
        elif arg == "--":
            return wheels + list(args[number + 1 :])
        elif arg.startswith("-") and arg != "-":
            taking = arg in _WITH_VALUE or (  # argparse's prefixes: --conf, --out
                arg.startswith("--")
                and "=" not in arg
                and any(o.startswith(arg) for o in _WITH_VALUE if o.startswith("--"))
            )
        else:
            wheels.append(arg)
    return wheels


def _not_hashing(arg: str) -> bool:
    # argparse takes any unambiguous prefix of a long option (``--dry``).
    return arg in _NOT_HASHING or (
        arg.startswith("--d") and "--dry-run".startswith(arg.split("=", 1)[0])
    )
