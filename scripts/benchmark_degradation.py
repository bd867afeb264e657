"""``python scripts/benchmark_degradation.py ...`` is ``srlab benchmark degradation ...``: the code is in ``common.commands.benchmark_degradation``."""
import sys

from common.commands.benchmark_degradation import main

if __name__ == "__main__":
    sys.argv[0] = "srlab benchmark degradation"
    main()
