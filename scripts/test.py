"""``python scripts/test.py ...`` is ``srlab test ...``: the code is in ``srlab.commands.test``."""
import sys

from srlab.commands.test import main

if __name__ == "__main__":
    sys.argv[0] = "srlab test"
    main()
