import sys

from .backend.early_probe import start

start(sys.argv[1:])  # before the front's own imports, which it overlaps

from .cli import main  # noqa: E402

if __name__ == "__main__":
    main()
