"""``python scripts/benchmark_photo.py ...`` is ``srlab benchmark photo ...``: the code is in ``srlab.commands.benchmark_photo``."""
import sys

from srlab.commands.benchmark_photo import main

if __name__ == "__main__":
    sys.argv[0] = "srlab benchmark photo"
    main()
