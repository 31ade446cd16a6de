"""The scorer's commands, one module each (see :mod:`evaluation.cli` for the convention)."""
