"""``python -m lightrestore.convergence RUN_DIR... [--target DB]`` (see
``lightrestore.reporting.convergence``)."""

import sys

from lightrestore.reporting.convergence import main

if __name__ == "__main__":
    sys.exit(main())
