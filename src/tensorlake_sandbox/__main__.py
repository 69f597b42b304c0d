"""``python -m tensorlake_sandbox``: the ``tensorlake-sandbox`` command."""

import sys

from tensorlake_sandbox.cli import main

sys.exit(main())
