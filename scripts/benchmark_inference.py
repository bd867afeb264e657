"""``python scripts/benchmark_inference.py ...`` is ``srlab benchmark inference ...``: the code is in ``srlab.commands.benchmark_inference``."""
import sys

from srlab.commands.benchmark_inference import main

if __name__ == "__main__":
    sys.argv[0] = "srlab benchmark inference"
    main()
