"""``python -m baseline_algorithm COMMAND``: the commands of ``ocelot``."""

import sys

from baseline_algorithm.cli import module_main

if __name__ == "__main__":
    sys.exit(module_main())
