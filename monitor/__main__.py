"""`python -m monitor ...` is the same as the `plantwatch` console script."""

import sys

from monitor.cli import main

sys.exit(main())
