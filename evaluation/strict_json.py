"""Strict JSON parsing: every failure of a JSON file is one :class:`InputError` line.

Strict means: a regular file within the document-size bound (:mod:`evaluation.limits`), UTF-8
only, no ``NaN``/``Infinity`` literals and no integer too long to convert (both named by their
entry), and nesting deep enough to exhaust the parser is an error, not a crash. The garbage
collector is paused while a document is parsed.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evaluation.errors import InputError, preview
from evaluation.limits import current_limits

__all__ = [
    "collector_paused",
    "json_kind",
    "parse_json",
    "read_document_bytes",
    "read_json_document",
]


def read_json_document(path: str | os.PathLike) -> Any:
    """Parse a JSON file strictly, turning every failure into a one-line :class:`InputError`.

    Strict means: a regular file within the document-size bound
    (:mod:`evaluation.limits`), UTF-8 only, no ``NaN``/``Infinity`` literals and no integer
    too long to convert (both named by their entry), and nesting deep enough to exhaust the
    parser is an error, not a crash.
    """
    holder = [read_document_bytes(path)]
    with collector_paused():
        return parse_json(holder, str(path))


def read_document_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of a regular, non-empty file within the document-size bound."""
    source = str(path)
    try:
        status = os.stat(path)
        if not stat.S_ISREG(status.st_mode):
            # A device or a pipe could be read forever (/dev/zero) or block (a FIFO).
            raise InputError(f"{source}: not a regular file")
        current_limits().check("document_mb", math.ceil(status.st_size / 1e6), source, "MB of JSON")
        raw = Path(path).read_bytes()
    except OSError as error:
        raise InputError(f"{source}: cannot read file: {error.strerror or error}") from None
    if not raw or raw.isspace():  # isspace stops at the first other byte; strip would copy
        raise InputError(f"{source}: file is empty, expected a JSON object")
    return raw


def parse_json(holder: list[bytes], source: str) -> Any:
    """Parse the document in ``holder`` (a one-item list, emptied when the standard parser
    takes over: the text alone stays in memory, not the bytes too)."""
    raw = holder[0]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(
            f"{source}: not UTF-8 text: byte 0x{raw[error.start]:02x} at offset {error.start}"
        ) from None
    holder.clear()
    del raw
    return _parse_standard(text, source)


def _parse_standard(text: str, source: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (_NonFiniteLiteral, ValueError) as error:
        if isinstance(error, json.JSONDecodeError):
            raise InputError(_invalid_json_message(source, error)) from None
    except RecursionError:
        raise InputError(f"{source}: not valid JSON: nesting too deep to parse") from None
    # NaN/Infinity, or an integer longer than Python converts: parse again, keeping a marker in
    # its place, to name the entry that holds it. The parser stopped at that number, so the
    # text after it may still be malformed, or too deep.
    try:
        document = json.loads(
            text,
            parse_int=_parse_integer,
            parse_constant=_mark_constant,
            object_pairs_hook=_Members,
        )
    except json.JSONDecodeError as error:
        raise InputError(_invalid_json_message(source, error)) from None
    except RecursionError:
        raise InputError(f"{source}: not valid JSON: nesting too deep to parse") from None
    raise InputError(_unrepresentable_number_message(document, source))


def _invalid_json_message(source: str, error: json.JSONDecodeError) -> str:
    return f"{source}: not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the garbage collector: parsing creates millions of objects that are no garbage,
    and the collector would scan them again and again (half of a large parse's time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _NonFiniteLiteral(Exception):
    pass


def _reject_constant(literal: str):
    raise _NonFiniteLiteral(literal)


class _Unrepresentable:
    """Stands in for a number JSON or Python cannot hold, so that its entry can be named."""

    def __init__(self, description: str):
        self.description = description


def _parse_integer(digits: str) -> int | _Unrepresentable:
    limit = sys.get_int_max_str_digits()
    if limit and len(digits.lstrip("-")) > limit:
        return _Unrepresentable(f"an integer of {len(digits.lstrip('-'))} digits is too long")
    return int(digits)


def _member_path(where: str, key: str) -> str:
    """``where.key`` for a plain key; ``where["k\\n..."]`` (escaped, shortened) otherwise."""
    if key.isidentifier() and key.isascii() and len(key) <= 40:
        return f"{where}.{key}" if where else key
    return f"{where}[{preview(key)}]"


class _Members(list):
    """An object's (key, value) pairs, duplicated keys kept: the number may be in a value a
    later duplicate replaces."""


def _mark_constant(literal: str) -> _Unrepresentable:
    return _Unrepresentable(f"{literal} is not allowed (JSON numbers are finite)")


def _unrepresentable_number_message(document: Any, source: str) -> str:
    """Name the first entry of ``document`` that holds an :class:`_Unrepresentable` marker."""
    # Depth-first in document order, without recursion (the nesting may be deep).
    stack = [("", document)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, _Unrepresentable):
            return f"{source}: {where or 'top level'}: {value.description}"
        if type(value) is _Members:
            children = [(_member_path(where, key), item) for key, item in value]
        elif type(value) is list:
            children = [(f"{where}[{index}]", item) for index, item in enumerate(value)]
        else:
            continue
        stack.extend(reversed(children))
    raise AssertionError("no unrepresentable number found after the parser reported one")


def json_kind(value: Any) -> str:
    """What kind of JSON value ``value`` is, in words: "an object", "a list", "null"..."""
    kinds = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "null",
    }
    return kinds.get(type(value), type(value).__name__)
