"""``python scripts/prepare_test8k.py ...`` is ``srlab prepare-test8k ...``: the code is in ``srlab.classsr.test8k``."""
import sys

from srlab.classsr.test8k import main

if __name__ == "__main__":
    sys.argv[0] = "srlab prepare-test8k"
    main()
