"""``python -m sim``: the same as the ``milestone-sim`` command."""

import sys

from .cli import main

sys.exit(main())
