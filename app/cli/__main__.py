"""`python -m app.cli`: the `pdconnect` command."""

import sys

from app.cli import main

sys.exit(main())
