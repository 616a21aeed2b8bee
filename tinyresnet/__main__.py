"""``python -m tinyresnet ...``: the ``tinyresnet`` command (see ``tinyresnet.cli``)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
