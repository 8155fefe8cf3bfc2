"""``python -m sandbox ...`` is the ``sandbox`` command."""

import sys

from sandbox.cli import main

sys.exit(main())
