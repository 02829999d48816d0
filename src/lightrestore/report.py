"""``python -m lightrestore.report DIR... [--out DIR]`` (see ``lightrestore.reporting.report``)."""

import sys

from lightrestore.reporting.report import main

if __name__ == "__main__":
    sys.exit(main())
