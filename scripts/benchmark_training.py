"""``python scripts/benchmark_training.py ...`` is ``srlab benchmark training ...``: the code is in ``srlab.commands.benchmark_training``."""
import sys

from srlab.commands.benchmark_training import main

if __name__ == "__main__":
    sys.argv[0] = "srlab benchmark training"
    main()
