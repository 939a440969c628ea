"""``python -m sim``: the same as the ``milestone-sim`` command."""

import sys

from .app.cli import main

sys.exit(main())
