"""Command-line options declared once, from an options dataclass.

Each field of the dataclass becomes ``--field-name``: its type comes from the annotation
(``X | None`` takes values of type X, a ``tuple`` of n items takes n values), its help text and
choices from the field's ``metadata`` (``help``, ``choices``, ``metavar``), its default from the
field (a command may override defaults, e.g. ``reproduce`` trains shorter). A field without a
default is a required option. Two commands that take the same options therefore share one
declaration, and :func:`options_from_args` builds the dataclass back from the parsed arguments.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, field, fields

__all__ = ["add_dataclass_options", "flag", "option", "options_from_args"]


def option(default, help: str, **metadata):
    """A dataclass field declaring a command-line option: its default, help text and any of
    ``choices`` and ``metavar``."""
    return field(default=default, metadata={"help": help, **metadata})


def _value_type(annotation) -> tuple[type, int | None]:
    """(type of one value, number of values or None for one) of a field annotation."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        (annotation,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if typing.get_origin(annotation) is tuple:
        items = typing.get_args(annotation)
        return items[0], len(items)
    return annotation, None


def flag(name: str) -> str:
    """The option string of a field: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def add_dataclass_options(
    parser: argparse.ArgumentParser,
    options_class: type,
    *,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    defaults: Mapping[str, object] | None = None,
) -> None:
    """Declare an option on ``parser`` for each field of ``options_class``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    options_class : dataclass type
        Fields carry ``metadata={"help": ..., "choices": ..., "metavar": ...}``.
    include : iterable of str, optional
        Only these fields (all by default), in the dataclass's order.
    exclude : iterable of str
        Fields the command sets itself.
    defaults : mapping, optional
        Field name -> default to show and use instead of the dataclass's.
    """
    hints = typing.get_type_hints(options_class)
    wanted = None if include is None else set(include)
    defaults = dict(defaults or {})
    for item in fields(options_class):
        if (wanted is not None and item.name not in wanted) or item.name in exclude:
            continue
        value_type, count = _value_type(hints[item.name])
        kwargs = {"help": item.metadata.get("help"), "dest": item.name}
        for key in ("choices", "metavar"):
            if key in item.metadata:
                kwargs[key] = item.metadata[key]
        if count is not None:
            kwargs["nargs"] = count
        default = defaults.get(item.name, item.default)
        if default is MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
        if value_type is bool:
            parser.add_argument(flag(item.name), action=argparse.BooleanOptionalAction, **kwargs)
        else:
            parser.add_argument(flag(item.name), type=value_type, **kwargs)


def options_from_args(options_class: type, args: argparse.Namespace, **values):
    """Build ``options_class`` from parsed arguments; ``values`` set the fields not declared."""
    hints = typing.get_type_hints(options_class)
    for item in fields(options_class):
        if item.name in values or not hasattr(args, item.name):
            continue
        value = getattr(args, item.name)
        if value is not None and _value_type(hints[item.name])[1] is not None:
            value = tuple(value)
        values[item.name] = value
    return options_class(**values)
