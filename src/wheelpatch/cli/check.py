"""``wheelpatch check``: checks of a resolution before an override is used.

Each check is a module with ``register(checks)``, which adds its sub-command to the ``check``
command's sub-parsers and sets ``run`` (``args, out -> exit code``) as the parser's
``check_run`` default; adding a check is one entry in ``_CHECKS``.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from . import check_cycles, check_libraries
from .terminal import Parser

__all__ = ["add_commands", "run"]

_CHECKS = (check_cycles, check_libraries)


def add_commands(commands: Any) -> None:
    """Add ``check`` and its sub-commands to ``wheelpatch``'s sub-parsers."""
    check = commands.add_parser(
        "check",
        help="check a resolution: requirement cycles, native libraries a removal leaves missing",
        description="Check a resolution (wheels, a wheelhouse, requirements, a pylock.toml or "
        "an index) before it is installed or built: see each check's --help.",
    )
    checks = check.add_subparsers(dest="check", metavar="CHECK", required=True, parser_class=Parser)
    for module in _CHECKS:
        module.register(checks)


def run(args: argparse.Namespace, out: TextIO) -> int:
    code: int = args.check_run(args, out)
    return code
