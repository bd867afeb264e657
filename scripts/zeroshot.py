"""``python scripts/zeroshot.py ...`` is ``srlab zeroshot ...``: the code is in ``srlab.mzsr.zeroshot_command``."""
import sys

from srlab.mzsr.zeroshot_command import main

if __name__ == "__main__":
    sys.argv[0] = "srlab zeroshot"
    main()
