"""``python scripts/test.py ...`` is ``srlab test ...``: the code is in ``common.commands.test``."""
import sys

from common.commands.test import main

if __name__ == "__main__":
    sys.argv[0] = "srlab test"
    main()
