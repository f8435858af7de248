"""gscache.cli.distributed's entry point with a rank renderer that hangs at frame 2
(tests/multi/_faults.HangingRenderer): ``python -m tests.multi._faulty_rank ARGS``."""

import sys

from gscache.cli.distributed import main
from tests.multi._faults import HangingRenderer

if __name__ == "__main__":
    sys.exit(main(factory=HangingRenderer))
