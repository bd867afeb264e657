"""``python scripts/prepare_classsr.py ...`` is ``srlab prepare-classsr ...``: the code is in ``srlab.classsr.prepare_command``."""
import sys

from srlab.classsr.prepare_command import main

if __name__ == "__main__":
    sys.argv[0] = "srlab prepare-classsr"
    main()
