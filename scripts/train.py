"""``python scripts/train.py ...`` is ``srlab train ...``: the code is in ``srlab.commands.train``."""
import sys

from srlab.commands.train import main

if __name__ == "__main__":
    sys.argv[0] = "srlab train"
    main()
