"""``python -m tensorlake_sandbox.local``: run a local sandbox in the foreground."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
