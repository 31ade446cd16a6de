"""The scorer's commands, one module each (see :mod:`evaluation.cli` for the convention)."""

__all__: list[str] = []
