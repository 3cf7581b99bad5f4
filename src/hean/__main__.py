"""``python -m hean`` is the same as the ``hean`` command."""

import sys

from hean.cli.main import main

sys.exit(main())
