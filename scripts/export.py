"""``python scripts/export.py ...`` is ``srlab export ...``: the code is in ``srlab.commands.export``."""
import sys

from srlab.commands.export import main

if __name__ == "__main__":
    sys.argv[0] = "srlab export"
    main()
