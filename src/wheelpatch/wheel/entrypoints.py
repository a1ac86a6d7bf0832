"""The rules for ``entry_points.txt``: what installers can make scripts of.

Two tiers. :func:`entry_point_problem` holds the rules every installer applies (pip, uv and
installer alike): each entry of ``[console_scripts]`` and ``[gui_scripts]`` is
``name = module:attr [extras]``, and its name is a file name in the scripts directory. ``patch``,
``verify`` and ``wheelpatch-install`` all refuse what breaks them. :func:`installer_problem` adds
what only installer cannot read, since it parses the whole file with :mod:`configparser` (a key or
section given twice, a line before any section, a ``[DEFAULT]`` section, a byte order mark) and
asserts on what it does not like (a bare ``AssertionError``, or nothing under ``python -O``): pip
installs such wheels, so only ``wheelpatch-install``, which installs with installer, refuses them.
"""

from __future__ import annotations

import ast
import configparser
import contextlib
import re

__all__ = ["ENTRY_POINTS_CAP", "entry_point_problem", "installer_problem"]

#: The largest ``entry_points.txt`` read into memory.
ENTRY_POINTS_CAP = 1 << 20
_SCRIPT_SECTIONS = ("console_scripts", "gui_scripts")
#: ``module:attr [extras]``, as installers read an entry point that a script calls.
_ENTRY_POINT = re.compile(r"[\w.]+\s*:\s*[\w.]+\s*(\[.*\])?", re.UNICODE)


def entry_point_problem(text: str) -> str | None:
    """What every installer refuses in ``entry_points.txt``; None if nothing.

    Only the script sections are read, line by line; other sections belong to other tools."""
    section: str | None = None
    for lineno, raw in enumerate(text.removeprefix("\ufeff").splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line[0] == "[" and line[-1] == "]":
            section = line[1:-1].strip()
            continue
        if section not in _SCRIPT_SECTIONS:
            continue
        name, sep, value = (part.strip() for part in line.partition("="))
        if not sep or not name or raw[:1].isspace():
            return f"line {lineno}: {line!r} in [{section}] is not 'name = module:attr'"
        if not _ENTRY_POINT.fullmatch(value):
            return (
                f"[{section}] {name} = {value!r} is not an entry point of the form "
                "'module:attr' (no installer can make a script of it)"
            )
        if "/" in name or name in (".", ".."):
            return f"[{section}] {name!r} is not a file name a script can have"
    return None


def installer_problem(text: str) -> str | None:
    """What installer cannot make scripts of, which it reads with
    :func:`installer.utils.parse_entrypoints`: the rules of every installer, and then the file as
    :mod:`configparser` reads it; None if nothing."""
    # installer is imported here, not with this module: `wheelpatch patch` never needs it, and
    # importing it costs a quarter of what patch imports.
    from installer.utils import parse_entrypoints  # noqa: PLC0415

    problem = entry_point_problem(text)
    if problem is not None:
        return problem
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
        if name in parser.defaults():
            return (
                f"[DEFAULT] {name} = {value!r}: installer reads [DEFAULT] entries into "
                f"[{section}] too, where this is not an entry point of the form 'module:attr'"
            )
        return (
            f"[{section}] {name} = {value!r} is not an entry point of the form 'module:attr' "
            "(installer cannot make a script of it)"
        )
    for section, name, _ in entries:
        if "/" in name or "\\" in name or name in (".", ".."):
            return f"[{section}] {name!r} is not a file name a script can have"
    return None
