"""``python scripts/benchmark_classsr.py ...`` is ``srlab benchmark classsr ...``: the code is in ``srlab.classsr.benchmark``."""
import sys

from srlab.classsr.benchmark import main

if __name__ == "__main__":
    sys.argv[0] = "srlab benchmark classsr"
    main()
