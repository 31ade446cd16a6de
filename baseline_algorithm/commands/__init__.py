"""Commands of ``python -m baseline_algorithm`` in the CLI convention of :mod:`evaluation.cli`."""
