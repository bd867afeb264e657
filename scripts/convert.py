"""``python scripts/convert.py ...`` is ``srlab convert ...``: the code is in ``srlab.commands.convert``."""
import sys

from srlab.commands.convert import main

if __name__ == "__main__":
    sys.argv[0] = "srlab convert"
    main()
