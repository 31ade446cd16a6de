"""The baseline's commands, one module each (see :mod:`evaluation.cli` for the convention)."""
