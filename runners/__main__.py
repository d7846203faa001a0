"""``python -m runners run SPEC.json [--artifacts DIR]``: one run in a process of its own."""

import sys

from runners.engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
