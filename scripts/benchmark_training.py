"""``python scripts/benchmark_training.py ...`` is ``srlab benchmark training ...``: the code is in ``common.commands.benchmark_training``."""
import sys

from common.commands.benchmark_training import main

if __name__ == "__main__":
    sys.argv[0] = "srlab benchmark training"
    main()
