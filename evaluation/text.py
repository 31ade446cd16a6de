"""Submitted text made safe for the program that shows it: a terminal, a spreadsheet, matplotlib.

A submission's file name, an organ or an error message that quotes them reaches programs that
read some characters as commands: a newline starts a line that looks like the tool's own, an
escape sequence drives the terminal, ``=`` starts a spreadsheet formula, ``$...$`` is matplotlib's
mathtext. Each function here keeps the text readable and takes that power away.
"""

from __future__ import annotations

__all__ = ["for_matplotlib", "for_spreadsheet", "for_terminal", "has_control_character"]

#: A leading character that makes a spreadsheet read a cell as a formula (OWASP's list).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def for_terminal(text: str) -> str:
    r"""``text`` with every non-printable character escaped: one line, no terminal control.

    Examples
    --------
    >>> for_terminal("bad\nerror: all fine")
    'bad\\nerror: all fine'
    >>> for_terminal("\x1b[31mred")
    '\\x1b[31mred'
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


def for_spreadsheet(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet runs: a leading ``= + - @`` (or tab, CR) is quoted.

    Examples
    --------
    >>> for_spreadsheet("=HYPERLINK(1)")
    "'=HYPERLINK(1)"
    >>> for_spreadsheet("team_1")
    'team_1'
    """
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def for_matplotlib(text: str) -> str:
    r"""``text`` as matplotlib shows it literally: every ``$`` escaped, so never mathtext, and
    control characters written as escapes (:func:`for_terminal`), as no font has their glyphs.

    Examples
    --------
    >>> for_matplotlib(r"$\undefined$")
    '\\$\\undefined\\$'
    """
    return for_terminal(text).replace("$", r"\$")


def has_control_character(text: str) -> bool:
    """Whether ``text`` holds NUL or another C0/C1 control character (or DEL)."""
    return any(ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F for char in text)
