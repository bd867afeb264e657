"""``python scripts/benchmark_asymsr.py ...`` is ``srlab benchmark asymsr ...``: the code is in ``srlab.asymsr.benchmark``."""
import sys

from srlab.asymsr.benchmark import main

if __name__ == "__main__":
    sys.argv[0] = "srlab benchmark asymsr"
    main()
