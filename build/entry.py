"""What the frozen binary runs: the same command line as `python -m sidecar`."""

import sys

from sidecar.backend.early_probe import start
from sidecar.backend.frozen import use_bundled_library

use_bundled_library()
start(sys.argv[1:])  # before the front's own imports, which it overlaps

from sidecar.cli import main  # noqa: E402

main()
