"""``python -m gscache.cli COMMAND ...``: the same as ``gscache COMMAND ...``."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
