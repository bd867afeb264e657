"""``python scripts/benchmark_asymsr.py ...`` is ``srlab benchmark asymsr ...``: the code is in ``asymsr.benchmark``."""
import sys

from asymsr.benchmark import main

if __name__ == "__main__":
    sys.argv[0] = "srlab benchmark asymsr"
    main()
