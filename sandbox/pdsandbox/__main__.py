"""`python -m pdsandbox [--port 8900]`: the sandbox on loopback, configured from the
environment (see `pdsandbox.server`)."""

import sys

from pdsandbox.server import main

sys.exit(main())
