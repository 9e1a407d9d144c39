"""What the frozen binary runs: the same command line as `python -m sidecar`."""

import sys

from sidecar.frozen import follow_launcher

if sys.argv[1:2] != ["worker"]:  # a worker's parent is the main process, not the launcher
    follow_launcher()

from sidecar.cli import main  # noqa: E402

main()
