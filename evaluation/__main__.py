"""``python -m evaluation COMMAND``: the scorer's commands (see :mod:`evaluation.cli`)."""

import sys

from evaluation.cli import main

if __name__ == "__main__":
    sys.exit(main())
