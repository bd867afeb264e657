"""``python scripts/benchmark_degradation.py ...`` is ``srlab benchmark degradation ...``: the code is in ``srlab.commands.benchmark_degradation``."""
import sys

from srlab.commands.benchmark_degradation import main

if __name__ == "__main__":
    sys.argv[0] = "srlab benchmark degradation"
    main()
