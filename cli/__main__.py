"""``python -m cli``: the ``tenantry`` command."""

import sys

from cli.main import main

sys.exit(main())
