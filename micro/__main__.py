"""``python -m micro`` (and the ``micro`` console script): see :mod:`micro.cli`."""

from __future__ import annotations

import sys

from micro.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
