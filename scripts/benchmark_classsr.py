"""``python scripts/benchmark_classsr.py ...`` is ``srlab benchmark classsr ...``: the code is in ``classsr.benchmark``."""
import sys

from classsr.benchmark import main

if __name__ == "__main__":
    sys.argv[0] = "srlab benchmark classsr"
    main()
