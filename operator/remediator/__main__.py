"""`python -m remediator` is the `remediator` command."""

import sys

from .cli import main

sys.exit(main())
