"""`python -m runtime` is the `nbento` command."""

import sys

from .cli import main

sys.exit(main())
