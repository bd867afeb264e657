"""``python scripts/benchmark_mzsr.py ...`` is ``srlab benchmark mzsr ...``: the code is in ``srlab.mzsr.benchmark``."""
import sys

from srlab.mzsr.benchmark import main

if __name__ == "__main__":
    sys.argv[0] = "srlab benchmark mzsr"
    main()
