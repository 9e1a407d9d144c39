"""What the frozen binary runs: the same command line as `python -m sidecar`."""

import sys

from sidecar.early_probe import start
from sidecar.frozen import follow_launcher, use_bundled_library

use_bundled_library()
start(sys.argv[1:])  # before the front's own imports, which it overlaps
# A worker's or probe's parent is the main process, not the launcher; a selftest is one short
# command that may run where no launcher is its parent (under an emulator, in the binary's tests).
if sys.argv[1:2] not in (["worker"], ["probe"], ["selftest"]):
    follow_launcher()

from sidecar.cli import main  # noqa: E402

main()
