"""``python -m inharmony.cli``: the ``inharmony`` command."""

import sys

from inharmony.cli import main

sys.exit(main())
