"""``python -m derivcheck``: the same as the ``derivcheck`` command."""

import sys

from derivcheck.interfaces.cli import main

if __name__ == "__main__":
    sys.exit(main())
