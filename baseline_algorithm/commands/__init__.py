"""Commands of ``python -m baseline_algorithm`` (each a module with HELP, add_arguments, run)."""
