"""`python -m nbento` is the `nbento` command."""

import sys

from runtime.cli import main

sys.exit(main())
