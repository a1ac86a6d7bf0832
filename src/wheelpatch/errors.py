"""The exceptions wheelpatch raises, and the exit code each one maps to.

Every message names where the problem is (a wheel, a member, a TOML key), quotes the bad value and
says the rule it breaks, so the CLI can print it on one line as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "EXIT_CONFIG",
    "EXIT_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_MISSING_LIBRARIES",
    "EXIT_OK",
    "EXIT_OUTPUT",
    "EXIT_RESOLUTION",
    "ConfigError",
    "InvalidWheel",
    "OutputError",
    "ResolutionError",
    "WheelpatchError",
]

EXIT_OK = 0
#: A wheel was refused (broken, hostile, inconsistent) or failed verification.
EXIT_INPUT = 1
#: The command line or the ``[tool.wheelpatch]`` configuration is wrong.
EXIT_CONFIG = 2
#: The output could not be written (exists without ``--force``, disk full, read-only, ...).
EXIT_OUTPUT = 3
#: ``wheelpatch-install``: pip could not resolve or fetch the requirements.
EXIT_RESOLUTION = 4
#: A needed native library would resolve nowhere (``check libraries``; ``wheelpatch-install``
#: refused a removal that leaves one unresolved).
EXIT_MISSING_LIBRARIES = 6
#: Interrupted by Ctrl-C (128 + SIGINT), after cleaning up.
EXIT_INTERRUPTED = 130


class WheelpatchError(Exception):
    """Base class of every error wheelpatch raises on purpose."""

    exit_code = EXIT_INPUT


class ConfigError(WheelpatchError, ValueError):
    """The configuration is invalid; ``errors`` holds every problem found, each naming its key."""

    exit_code = EXIT_CONFIG

    def __init__(self, errors: Sequence[str] | str) -> None:
        # A plain message too: hatchling re-raises a plugin's error as type(error)(message).
        self.errors = (errors,) if isinstance(errors, str) else tuple(errors)
        super().__init__("; ".join(self.errors))


class InvalidWheel(WheelpatchError, ValueError):
    """A wheel is refused: the message starts with the wheel's file name."""

    exit_code = EXIT_INPUT


class OutputError(WheelpatchError, OSError):
    """The output could not be written where it was asked to go."""

    exit_code = EXIT_OUTPUT


class ResolutionError(WheelpatchError):
    """pip could not resolve or download what ``wheelpatch-install`` was asked to install."""

    exit_code = EXIT_RESOLUTION
