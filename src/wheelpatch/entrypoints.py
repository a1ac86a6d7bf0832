"""The rules for ``entry_points.txt``: what installers can make scripts of.

installer parses the file with :func:`installer.utils.parse_entrypoints`, which asserts that each
script entry is ``module:attr`` (a bare ``AssertionError``, or nothing at all under ``python -O``),
and names each script file after its entry. pip and uv refuse the same entries. ``patch``,
``verify`` and ``wheelpatch-install`` all apply these rules, through :func:`entry_point_problem`.
"""

from __future__ import annotations

import ast
import configparser
import contextlib

from installer.utils import parse_entrypoints

__all__ = ["ENTRY_POINTS_CAP", "entry_point_problem"]

#: The largest ``entry_points.txt`` read into memory.
ENTRY_POINTS_CAP = 1 << 20
_SCRIPT_SECTIONS = ("console_scripts", "gui_scripts")


def entry_point_problem(text: str) -> str | None:
    """What is wrong with ``entry_points.txt`` for installer, which parses it with
    :func:`installer.utils.parse_entrypoints` (asserting each script entry is ``module:attr``);
    None if nothing is."""
    parser = configparser.ConfigParser(delimiters="=")  # as installer reads it
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    try:
        parser.read_string(text)
        entries = [
            (section, name, value)
            for section in parser.sections()
            if section in _SCRIPT_SECTIONS
            for name, value in parser.items(section)
        ]
    except configparser.MissingSectionHeaderError as exc:
        return f"line {exc.lineno}: {exc.line.strip()!r} comes before any [section] header"
    except configparser.ParsingError as exc:
        lineno, shown = exc.errors[0]  # configparser keeps the line's repr()
        with contextlib.suppress(ValueError, SyntaxError):
            shown = repr(ast.literal_eval(shown).strip())
        return f"line {lineno}: {shown} is not 'name = value'"
    except configparser.DuplicateOptionError as exc:
        return f"line {exc.lineno}: {exc.option!r} appears twice in [{exc.section}]"
    except configparser.DuplicateSectionError as exc:
        return f"line {exc.lineno}: section [{exc.section}] appears twice"
    except configparser.Error as exc:
        return " ".join(str(exc).split())
    parsed = 0
    try:
        for _ in parse_entrypoints(text):
            parsed += 1
    except (AssertionError, AttributeError, ValueError, configparser.Error):  # -O: no asserts
        section, name, value = entries[parsed]
        return (
            f"[{section}] {name} = {value!r} is not an entry point of the form 'module:attr' "
            "(installer cannot make a script of it)"
        )
    for section, name, _ in entries:
        if "/" in name or "\\" in name or name in (".", ".."):
            return f"[{section}] {name!r} is not a file name a script can have"
    return None
