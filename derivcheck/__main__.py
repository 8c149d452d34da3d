"""``python -m derivcheck``: the same as the ``derivcheck`` command."""

import sys

from derivcheck.cli import main

if __name__ == "__main__":
    sys.exit(main())
